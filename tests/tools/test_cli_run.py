"""demo, chat and replay: the runtime driven from the command line."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chatledger.eventstore import AIMessage, HumanMessage, RunRecorded, SessionKey, open_store
from chatledger.projections import ChatHistory
from chatledger.runtime import RunnableWithMessageHistory
from chatledger.runtime.models import OfflineChatModel
from tests.tools.cli_support import run


def test_demo_shows_memory_within_a_session_and_none_across(tmp_path: Path) -> None:
    """The demo's model knows Bob's name only in the session where he introduced himself."""
    result = run(["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    tag = re.search(r"run tag: (\w+)", out)
    assert tag is not None
    lines = [line.strip() for line in out.splitlines()]
    for section in ("1", "3", "4"):
        same = f"[session_id={tag[1]}-{section}] assistant: "
        other = f"[session_id={tag[1]}-{section}a] assistant: "
        assert same + "Your name is Bob." in lines
        assert other + "I'm sorry, I don't know your name." in lines
    assert f"[session_id={tag[1]}-2] assistant: Il tuo nome è Bob." in lines
    assert f"[user_id=456 conversation_id={tag[1]}-1] assistant: Mi dispiace, non so il tuo " \
           "nome." in lines
    assert "intact: " in out
    assert (tmp_path / "chatledger.db").exists()


def test_demo_runs_twice_on_one_database(tmp_path: Path) -> None:
    """A second run uses fresh session ids, so its sessions start empty and it passes again."""
    first = run(["demo"])
    second = run(["demo"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "I'm sorry, I don't know your name." in second.stdout
    with open_store(f"sqlite:///{tmp_path / 'chatledger.db'}") as store:
        assert len(store.sessions(limit=100)) == 20


def test_demo_step_7_shows_the_history_the_second_turn_read(tmp_path: Path) -> None:
    """Step 7 reads back the history version the second turn's model read, and shows it."""
    result = run(["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    tag = re.search(r"run tag: (\w+)", out)
    assert tag is not None
    key = SessionKey(session_id=f"{tag[1]}-1")
    with open_store(f"sqlite:///{tmp_path / 'chatledger.db'}") as store:
        runs = [r.event for r in store.read(key) if isinstance(r.event, RunRecorded)]
        assert len(runs) == 2
        read = runs[1].history_version
        _, seen = store.load_history_at(key, version=read)
    step = out.split("== 7. ", 1)[1].split("== 8. ", 1)[0]
    assert step.startswith(f"The history as of version {read} ==")
    assert f"--as-of {read})" in step
    rows = [line.split(None, 2) for line in step.splitlines()
            if re.match(r"\s+\d+\s", line)]
    assert [(row[1], row[2].strip()) for row in rows] == [
        ("user" if m.type == "human" else "assistant", m.text) for m in seen]
    assert len(rows) == 2


def test_chat_remembers_within_the_session_and_serves_slash_commands(tmp_path: Path) -> None:
    """Piped lines become turns; /history and /as-of show the log; /quit stops reading."""
    db = f"sqlite:///{tmp_path / 'chat.db'}"
    lines = "hi im bob!\n/history\nwhats my name?\n/as-of 3\n/bogus\n/quit\nnever read\n"
    result = run(["--db", db, "chat", "user_id=1"], input=lines)
    assert result.exit_code == 0, result.output
    assert "assistant> Nice to meet you, Bob!" in result.stdout
    assert "assistant> Your name is Bob." in result.stdout
    assert "user_id=1 at version 3: 2 messages" in result.stdout
    assert "unknown command '/bogus'" in result.stderr
    with open_store(db) as store:
        texts = [m.text for m in store.load_history(SessionKey(user_id="1"))[1]]
        assert texts == ["hi im bob!", "Nice to meet you, Bob!", "whats my name?",
                         "Your name is Bob."]


def test_chat_takes_a_byte_order_mark_and_names_a_bad_as_of(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark before the first piped line is not part of it (so /history
    is a command, not a message), and /as-of with no number says what it takes."""
    db = f"sqlite:///{tmp_path / 'chat.db'}"
    result = run(["--db", db, "chat", "bom"], input="\ufeff/history\n/as-of two\n")
    assert result.exit_code == 0, result.output
    assert "session_id=bom at version 0: 0 messages" in result.stdout
    assert "/as-of takes a version number, e.g. /as-of 2; got 'two'" in result.stderr
    assert "unknown command" not in result.stderr
    with open_store(db) as store:
        assert store.sessions() == []


def test_chat_prints_no_reply_for_a_failed_model_call(tmp_path: Path) -> None:
    """When the model cannot be reached, stdout gets no empty "assistant>" line: the error is
    on stderr, the exit status says it, and no half turn is saved."""
    db = f"sqlite:///{tmp_path / 'chat.db'}"
    result = run(["--db", db, "chat", "down", "--base-url", "http://127.0.0.1:1/v1",
                  "--model", "m"], input="hello\n")
    assert result.exit_code != 0
    assert "assistant>" not in result.stdout
    assert "Error:" in result.stderr
    with open_store(db) as store:
        assert store.load_history("down") == (2, [])


def test_chat_needs_both_base_url_and_model(tmp_path: Path) -> None:
    """--model without --base-url is one clear error line."""
    result = run(["--db", f"sqlite:///{tmp_path / 'c.db'}", "chat", "--model", "x"], input="")
    assert result.exit_code == 2 and "--model needs --base-url" in result.stderr


class _OpenAIHandler(BaseHTTPRequestHandler):
    """Streams 'Hello from the server.' in three chunks, the way OpenAI's API does."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """Answer a streamed chat completion."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ("Hello ", "from the ", "server."):
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                     "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": piece},
                                  "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def openai_server() -> Iterator[ThreadingHTTPServer]:
    """An OpenAI-compatible streaming server on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIHandler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_chat_with_a_base_url_talks_to_that_server(tmp_path: Path,
                                                    openai_server: ThreadingHTTPServer) -> None:
    """--base-url and --model send the history to the server and save its streamed reply."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    url = f"http://127.0.0.1:{openai_server.server_address[1]}/v1"
    result = run(["--db", db, "chat", "remote", "--base-url", url, "--model", "tiny"],
                 input="hello?\n")
    assert result.exit_code == 0, result.output
    assert "assistant> Hello from the server." in result.stdout
    request = openai_server.requests[0]  # type: ignore[attr-defined]
    assert request["model"] == "tiny"
    assert request["messages"][-1] == {"role": "user", "content": "hello?"}
    with open_store(db) as store:
        assert store.load_history("remote")[1][-1].text == "Hello from the server."


def _recorded_session(db: str) -> SessionKey:
    """A session with two turns recorded by RunnableWithMessageHistory and the offline model."""
    key = SessionKey(session_id="r1")
    with open_store(db) as store:
        chain = RunnableWithMessageHistory(OfflineChatModel(),
                                           lambda session_id: ChatHistory(session_id, store))
        for text in ("hi im bob!", "whats my name?"):
            chain.invoke([HumanMessage(content=text)], config={"session_id": "r1"})
    return key


def test_replay_with_the_same_model_is_the_same(tmp_path: Path) -> None:
    """Replaying through the model that recorded the runs shows no difference and exits 0."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _recorded_session(db)
    result = run(["--db", db, "replay", "r1", "--chain", "chatledger.runtime.models:OfflineChatModel"])
    assert result.exit_code == 0, result.output
    assert "2 of 2 runs replayed the same" in result.stdout


def test_replay_sees_the_exact_history_version_and_shows_a_diff(tmp_path: Path) -> None:
    """The chain gets the history as of the recorded version; a different answer is diffed."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _recorded_session(db)
    module = tmp_path / "shouting_chain.py"
    module.write_text(
        "from chatledger.eventstore import AIMessage\n"
        "seen = []\n"
        "class Shout:\n"
        "    def invoke(self, messages):\n"
        "        seen.append([m.text for m in messages])\n"
        "        return AIMessage(content=messages[-1].text.upper())\n"
        "chain = Shout()\n")
    try:
        result = run(["--db", db, "replay", "r1", "--chain", "shouting_chain:chain"])
        assert result.exit_code == 1
        assert "-assistant: Your name is Bob." in result.stdout
        assert "+assistant: WHATS MY NAME?" in result.stdout
        assert "0 of 2 runs replayed the same" in result.stdout
        seen = sys.modules["shouting_chain"].seen
        assert seen == [["hi im bob!"],
                        ["hi im bob!", "Nice to meet you, Bob!", "whats my name?"]]
    finally:
        sys.modules.pop("shouting_chain", None)


def test_replay_json_and_one_run(tmp_path: Path) -> None:
    """--json gives each run's recorded and replayed messages; --run picks one run."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    key = _recorded_session(db)
    with open_store(db) as store:
        runs = [r.event for r in store.read(key) if isinstance(r.event, RunRecorded)]
    data = json.loads(run(["--db", db, "--json", "replay", "r1", "--chain",
                           "chatledger.runtime.models:OfflineChatModel", "--run", runs[1].run_id]).stdout)
    assert data["equal"] is True and len(data["runs"]) == 1
    assert data["runs"][0]["history_version"] == runs[1].history_version
    assert data["runs"][0]["replayed"][0]["content"] == "Your name is Bob."


def test_replay_errors_are_one_line(tmp_path: Path) -> None:
    """A bad --chain, or a session without recorded runs, is one clear line."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _recorded_session(db)
    with open_store(db) as store:
        ChatHistory("plain", store).add_messages([HumanMessage(content="x"),
                                                  AIMessage(content="y")])
    for chain, key, needle in (("nochain", "r1", "must look like module:attr"),
                               ("no_such_module_xyz:chain", "r1", "cannot load chain"),
                               ("json:dumps", "r1", "not a runnable"),
                               ("chatledger.runtime.models:OfflineChatModel", "plain", "no recorded runs")):
        result = run(["--db", db, "replay", key, "--chain", chain])
        assert result.exit_code == 2, (chain, result.output)
        assert needle in result.stderr and len(result.stderr.splitlines()) == 1
