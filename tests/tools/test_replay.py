"""replay: the app's own chain on the recorded chain input, or the exact model request re-sent."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from chatledger.eventstore import HumanMessage, InvalidInputError, NotFoundError, open_store
from chatledger.projections import ChatHistory
from chatledger.runtime import RunnableWithMessageHistory
from chatledger.runtime.models import FakeChatModel, ModelConnectionError, OpenAIChatModel
from chatledger.tools.replay import load_chain, replay
from tests.projections.test_turns import FIXTURE
from tests.runtime.openai_server import (
    OpenAIServer,
    Reply,
    closed_port,
    completion,
    running,
    text_stream,
)
from tests.tools.cli_support import assert_one_line_error, run

APP = '''
from chatledger.projections import ChatHistory
from chatledger.runtime import ChatPromptTemplate, MessagesPlaceholder, RunnableWithMessageHistory
from chatledger.runtime.models import OfflineChatModel

SYSTEM = {system!r}
prompt = ChatPromptTemplate.from_messages([
    ("system", SYSTEM),
    MessagesPlaceholder(variable_name="history"),
    ("human", "{{input}}"),
])
runnable = prompt | OfflineChatModel()
chain = RunnableWithMessageHistory(runnable, lambda session_id: ChatHistory(session_id, {url!r}),
                                   input_messages_key="input", history_messages_key="history")
'''
README_SYSTEM = "You're an assistant who speaks in {language}. Respond in 20 words or fewer"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """The README's prompt-chain app as a module, and its database with session 2 recorded."""
    db = f"sqlite:///{tmp_path / 'memory.db'}"
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "replay_app.py").write_text(APP.format(system=README_SYSTEM, url=db))
    (tmp_path / "replay_app_changed.py").write_text(
        APP.format(system="You speak {language}, briefly.", url=db))
    import replay_app  # type: ignore[import-not-found]

    for text in ("hi im bob!", "whats my name?"):
        replay_app.chain.invoke({"language": "italian", "input": text},
                                config={"configurable": {"session_id": "2"}})
    yield db, tmp_path
    for name in ("replay_app", "replay_app_changed"):
        sys.modules.pop(name, None)


def test_readme_prompt_chain_replays_the_same(app: tuple[str, Path]) -> None:
    """The how-to's dict-input chain replays both turns the same, through wrapper or runnable."""
    db, _ = app
    for spec in ("replay_app:chain", "replay_app:runnable"):
        result = run(["--db", db, "replay", "2", "--chain", spec])
        assert result.exit_code == 0, result.output
        assert "2 of 2 runs replayed the same" in result.stdout
        assert "partly recorded" not in result.stdout


def test_a_changed_prompt_shows_in_the_request_diff(app: tuple[str, Path]) -> None:
    """A chain whose system prompt changed replays as different, with the request diffed."""
    db, _ = app
    result = run(["--db", db, "replay", "2", "--chain", "replay_app_changed:chain", "--turn", "2"])
    assert result.exit_code == 1, result.output
    assert "-  system: You're an assistant who speaks in italian." in result.stdout
    assert "+  system: You speak italian, briefly." in result.stdout
    assert "0 of 1 run replayed the same" in result.stdout


def test_json_reports_turns_and_diffs(app: tuple[str, Path]) -> None:
    """--json gives each turn's number, verdict, outputs and request diff."""
    db, _ = app
    data = json.loads(run(["--db", db, "--json", "replay", "2", "--chain",
                           "replay_app_changed:chain"]).stdout)
    assert data["equal"] is False
    assert [r["turn"] for r in data["runs"]] == [1, 2]
    assert all(r["request_diff"] and not r["partly_recorded"] for r in data["runs"])
    # the offline model answers from the conversation, not the prompt wording: outputs agree
    assert [r["diff"] for r in data["runs"]] == ["", ""]


def test_library_replay_by_version_range(app: tuple[str, Path]) -> None:
    """replay(versions=(lo, hi)) picks the runs recorded in that range."""
    db, _ = app
    chain = load_chain("replay_app:chain")
    with open_store(db) as store:
        all_runs = replay(store, "2", chain)
        second = replay(store, "2", chain, versions=(all_runs[1].version, all_runs[1].version))
        assert [r.turn for r in second] == [2] and second[0].equal
        with pytest.raises(NotFoundError):
            replay(store, "2", chain, turn=9)
        with pytest.raises(InvalidInputError):
            replay(store, "2")


def test_a_turn_out_of_range_names_the_valid_range(app: tuple[str, Path]) -> None:
    """A turn past the last recorded one says how many there are; below 1 is a bad argument."""
    db, _ = app
    chain = load_chain("replay_app:chain")
    with open_store(db) as store:
        with pytest.raises(NotFoundError) as beyond:
            replay(store, "2", chain, turn=3)
        assert str(beyond.value) == ("turn 3 is out of range: session 'session_id=2' has 2 "
                                     "recorded turns (1-2)")
        for bad in (0, -1):
            with pytest.raises(InvalidInputError, match=f"turn must be 1 or more.*got {bad}"):
                replay(store, "2", chain, turn=bad)
    result = run(["--db", db, "replay", "2", "--chain", "replay_app:chain", "--turn", "3"])
    assert_one_line_error(result, "turn 3 is out of range", "has 2 recorded turns (1-2)")


def test_model_replay_resends_the_exact_request(app: tuple[str, Path]) -> None:
    """--model/--base-url sends the recorded request unchanged and diffs the server's reply."""
    db, _ = app
    server: OpenAIServer
    with running() as server:
        server.script(Reply(body=completion("Ciao Bob!")), Reply(body=completion("Bob.")))
        result = run(["--db", db, "replay", "2", "--model", "served",
                      "--base-url", server.base_url])
        assert result.exit_code == 1, result.output
        assert "+assistant: Bob." in result.stdout
        sent = server.requests[1].body
        assert sent["model"] == "served"
        assert sent["messages"] == [
            {"role": "system", "content": README_SYSTEM.format(language="italian")},
            {"role": "user", "content": "hi im bob!"},
            {"role": "assistant", "content": "Ciao Bob! È un piacere conoscerti."},
            {"role": "user", "content": "whats my name?"}]


def test_old_turns_replay_partly_recorded(tmp_path: Path) -> None:
    """Runs recorded before chain inputs were replay from history + input, marked as such."""
    import shutil

    shutil.copy(FIXTURE, tmp_path / "old.db")
    with open_store(f"sqlite:///{tmp_path / 'old.db'}") as store:
        replayed = replay(store, "fixture", FakeChatModel(["Hello Bob.", "Your name is Bob."]))
        assert replayed and all(r.partly_recorded for r in replayed)
    result = run(["--db", f"sqlite:///{tmp_path / 'old.db'}", "replay", "fixture", "--chain",
                  "chatledger.runtime.models:OfflineChatModel"])
    assert "partly recorded" in result.stdout


def test_replay_needs_exactly_one_of_chain_and_model(app: tuple[str, Path]) -> None:
    """Neither, or both, of --chain and --model is one clear error line."""
    db, _ = app
    assert_one_line_error(run(["--db", db, "replay", "2"]), "needs --chain")
    assert_one_line_error(run(["--db", db, "replay", "2", "--chain", "replay_app:chain",
                               "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]),
                          "not both")


def test_library_model_replay_sends_each_recorded_request(app: tuple[str, Path]) -> None:
    """replay(model=...) gives the model exactly the recorded requests and diffs its replies."""
    db, _ = app
    model = FakeChatModel(["Ciao Bob! È un piacere conoscerti.", "Il tuo nome è Bob."])
    with open_store(db) as store:
        runs = replay(store, "2", model=model)
        _, history = store.load_history_at("2", version=runs[1].history_version)
    assert [r.equal for r in runs] == [True, True]
    system = README_SYSTEM.format(language="italian")
    assert [[m.text for m in call] for call in model.calls] == [
        [system, "hi im bob!"], [system, *[m.text for m in history], "whats my name?"]]


def assert_stopped(result: Result, needle: str) -> None:
    """Exit 2, nothing on stdout, and the error as stderr's last line (retries log before it)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and needle in last, last


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, OpenAIServer]]:
    """A session with a plain and a streamed turn recorded from a scripted OpenAI server."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    with running() as server:
        server.script(Reply(body=completion("Hello Bob.")),
                      Reply(kind="sse", events=text_stream(["Your name ", "is Bob."],
                                                           usage={"prompt_tokens": 9,
                                                                  "completion_tokens": 4,
                                                                  "total_tokens": 13})))
        model = OpenAIChatModel("served", base_url=server.base_url, temperature=0.3,
                                max_retries=0)
        chain = RunnableWithMessageHistory(model, lambda sid: ChatHistory(sid, db))
        config = {"configurable": {"session_id": "s"}}
        chain.invoke([HumanMessage("hi im bob")], config)
        for _ in chain.stream([HumanMessage("whats my name?")], config):
            pass
        assert server.requests[1].body["stream"] is True
        yield db, server


def test_model_replay_resends_a_streamed_turn_as_a_stream(
        served: tuple[str, OpenAIServer]) -> None:
    """Each re-sent request equals the recorded one, "stream" included; the chunks are diffed."""
    db, server = served
    server.script(Reply(body=completion("Hello Bob.")),
                  Reply(kind="sse", events=text_stream(["Your name is ", "Robert."])))
    result = run(["--db", db, "replay", "s", "--model", "served", "--base-url", server.base_url])
    assert result.exit_code == 1, result.output
    recorded, replayed = server.requests[:2], server.requests[2:]
    assert [r.body for r in replayed] == [r.body for r in recorded]
    assert replayed[1].body["stream_options"] == {"include_usage": True}
    assert "turn 1: " in result.stdout and "): same" in result.stdout
    assert "-assistant: Your name is Bob.\n+assistant: Your name is Robert." in result.stdout


def test_model_replay_against_an_unreachable_server_is_an_error(
        served: tuple[str, OpenAIServer]) -> None:
    """A server that cannot be reached is one error line and exit 2, never a difference."""
    db, _ = served
    url = f"http://127.0.0.1:{closed_port()}/v1"
    for args in (["replay", "s", "--model", "served", "--base-url", url],
                 ["replay", "s", "--model", "served", "--base-url", url, "--json"]):
        result = run(["--db", db, *args])
        assert_stopped(result, "cannot reach the model server")
    with open_store(db) as store, pytest.raises(ModelConnectionError):
        replay(store, "s", model=OpenAIChatModel("served", base_url=url, max_retries=0))


def test_server_errors_stop_replay_but_a_refused_request_is_a_result(
        served: tuple[str, OpenAIServer]) -> None:
    """A 5xx or 401 stops replay (exit 2); a 400 for the request is the model's answer (exit 1)."""
    db, server = served
    args = ["--db", db, "replay", "s", "--turn", "1", "--model", "served",
            "--base-url", server.base_url]
    for status in (401, 503):
        server.script(Reply(status=status, body={"error": {"message": "nope"}}),
                      default=Reply(status=status, body={"error": {"message": "nope"}}))
        assert_stopped(run(args), str(status))
    server.script(Reply(status=400, body={"error": {"message": "temperature not supported"}}))
    result = run(args)
    assert result.exit_code == 1, result.output
    assert "+error: ModelHTTPError" in result.stdout and "DIFFERENT" in result.stdout


def test_chain_replay_against_an_unreachable_server_is_an_error(
        served: tuple[str, OpenAIServer]) -> None:
    """The app's chain failing to reach its server raises; the chain's other errors are results."""
    db, _ = served
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with open_store(db) as store:
        with pytest.raises(ModelConnectionError):
            replay(store, "s", OpenAIChatModel("served", base_url=url, max_retries=0))
        broken = replay(store, "s", FakeChatModel([ValueError("broken")]), turn=1)
    assert broken[0].error is not None and not broken[0].equal
