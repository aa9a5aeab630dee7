"""export: message JSON lines, OpenAI fine-tuning JSONL (validated), Parquet; whole files only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from chatledger.eventstore import (
    AIMessage,
    AnyMessage,
    ChatMessage,
    EventStore,
    HistoryCleared,
    HumanMessage,
    MessageAppended,
    SessionKey,
    ToolMessage,
    from_openai,
)
from chatledger.projections import ChatHistory
from chatledger.tools._finetune import InvalidExample, finetune_example
from tests.tools.cli_support import ALICE, BOB, run


def read_jsonl(path: Path) -> list[Any]:
    """Every line of a JSONL file, parsed."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_finetune_line(example: Any) -> None:
    """Assert one line follows OpenAI's fine-tuning chat format."""
    assert set(example) == {"messages"}
    open_calls: set[str] = set()
    assistants = 0
    for message in example["messages"]:
        assert message["role"] in ("system", "user", "assistant", "tool")
        assert set(message) <= {"role", "content", "name", "tool_calls", "tool_call_id"}
        if message["role"] == "assistant":
            assistants += 1
            for call in message.get("tool_calls", []):
                assert call["type"] == "function" and isinstance(call["id"], str)
                assert isinstance(call["function"]["arguments"], str)
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                open_calls.add(call["id"])
            assert isinstance(message["content"], str) or (
                message["content"] is None and message.get("tool_calls"))
        else:
            assert isinstance(message["content"], (str, list))
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls
            open_calls.discard(message["tool_call_id"])
    assert assistants >= 1


def test_jsonl_has_one_line_per_message_with_its_key_and_envelope(
        db: str, tmp_path: Path, store: EventStore) -> None:
    """Each line carries stream_id, key parts, version, position, time and the message."""
    out = tmp_path / "all.jsonl"
    result = run(["--db", db, "export", "--format", "jsonl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 7 messages to {out}\n"
    lines = read_jsonl(out)
    records = store.read_all()
    assert [(line["stream_id"], line["version"], line["position"]) for line in lines] == [
        (r.stream_id, r.version, r.position) for r in records]
    first = lines[1]
    assert first["key"] == ALICE.parts and first["index"] == 0
    assert first["message"] == {"type": "human", "content": "Wie spät ist es in Zürich? 🕰"}
    assert "Zürich" in out.read_text(encoding="utf-8")
    decoded = msgspec.convert(lines[2]["message"], AnyMessage)  # type: ignore[arg-type]
    assert isinstance(decoded, AIMessage) and decoded.tool_calls[0]["args"] == {"city": "Zürich"}


def test_jsonl_filters_by_key_parts_and_includes_forks_and_cleared_messages(
        db: str, tmp_path: Path, store: EventStore) -> None:
    """A filter keeps one user's sessions; a fork's inherited messages and cleared ones are in."""
    ChatHistory(BOB, store).fork(SessionKey(session_id="bob2"))
    store.append(BOB, [HistoryCleared()])
    out = tmp_path / "bob.jsonl"
    run(["--db", db, "export", "--format", "jsonl", "--out", str(out), "session_id=bob"])
    lines = read_jsonl(out)
    assert [line["message"]["content"] for line in lines] == ["hi im bob!",
                                                              "Nice to meet you, Bob!"]
    out2 = tmp_path / "bob2.jsonl"
    run(["--db", db, "export", "--format", "jsonl", "--out", str(out2), "session_id=bob2"])
    assert [(line["version"], line["index"]) for line in read_jsonl(out2)] == [(1, 0), (1, 1)]


def test_openai_export_is_valid_fine_tuning_data(db: str, tmp_path: Path) -> None:
    """Every line re-reads as a valid fine-tuning example, tool calls included."""
    out = tmp_path / "train.jsonl"
    result = run(["--db", db, "export", "--format", "openai", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 conversations (7 messages)" in result.stdout
    examples = read_jsonl(out)
    for example in examples:
        check_finetune_line(example)
    alice = next(e for e in examples if e["messages"][0]["role"] == "system")
    assert [m["role"] for m in alice["messages"]] == ["system", "user", "assistant", "tool",
                                                      "assistant"]
    call = alice["messages"][2]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Zürich"}
    assert alice["messages"][3]["tool_call_id"] == call["id"]


def test_openai_export_skips_and_reports_invalid_conversations(
        db: str, tmp_path: Path, store: EventStore) -> None:
    """A conversation without an assistant message is skipped, counted and its reason shown."""
    store.append("lonely", [MessageAppended(message=HumanMessage(content="anyone?"))])
    out = tmp_path / "train.jsonl"
    result = run(["--db", db, "export", "--format", "openai", "--out", str(out)])
    assert result.exit_code == 0
    assert "skipped 1 conversation " in result.stderr
    assert "session_id=lonely: no assistant message" in result.stderr
    assert len(read_jsonl(out)) == 2


def test_strict_openai_export_fails_and_writes_nothing(db: str, tmp_path: Path,
                                                       store: EventStore) -> None:
    """--strict turns an invalid conversation into exit status 1 and no file."""
    store.append("lonely", [MessageAppended(message=HumanMessage(content="anyone?"))])
    out = tmp_path / "train.jsonl"
    before = sorted(os.listdir(tmp_path))
    result = run(["--db", db, "export", "--format", "openai", "--out", str(out), "--strict"])
    assert result.exit_code == 1
    assert "1 conversation is not valid" in result.stderr
    assert "nothing was written" in result.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_a_failed_export_keeps_the_previous_file(db: str, tmp_path: Path,
                                                 store: EventStore) -> None:
    """A rejected export leaves an existing file as it was: the new one is renamed in only at the end."""
    out = tmp_path / "train.jsonl"
    out.write_text("previous\n")
    store.append("lonely", [MessageAppended(message=HumanMessage(content="anyone?"))])
    run(["--db", db, "export", "--format", "openai", "--out", str(out), "--strict"])
    assert out.read_text() == "previous\n"


def test_export_of_a_filter_matching_nothing_is_an_error(db: str, tmp_path: Path) -> None:
    """A key filter that matches no session fails and writes no file."""
    out = tmp_path / "none.jsonl"
    result = run(["--db", db, "export", "--format", "jsonl", "--out", str(out), "user_id=9"])
    assert result.exit_code == 2 and "no session matches user_id=9" in result.stderr
    assert not out.exists()


def test_export_summary_as_json(db: str, tmp_path: Path) -> None:
    """--json gives the counts of what was written."""
    out = tmp_path / "train.jsonl"
    data = json.loads(run(["--db", db, "--json", "export", "--format", "openai", "--out",
                           str(out)]).stdout)
    assert data["conversations"] == 2 and data["messages"] == 7 and data["skipped"] == 0


def test_parquet_export_round_trips(db: str, tmp_path: Path) -> None:
    """With pyarrow, the Parquet file holds the same rows as the JSONL export."""
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "all.parquet"
    result = run(["--db", db, "export", "--format", "parquet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 7
    assert rows[1]["text"] == "Wie spät ist es in Zürich? 🕰"
    assert json.loads(rows[1]["key"]) == ALICE.parts


@pytest.mark.parametrize("messages,reason", [
    ([], "no messages"),
    ([HumanMessage(content="hi")], "no assistant message"),
    ([HumanMessage(content="hi"), ChatMessage(content="x", role="critic"),
      AIMessage(content="ok")], "role 'critic'"),
    ([HumanMessage(content="hi"), ToolMessage(content="1", tool_call_id="c9"),
      AIMessage(content="ok")], "answers tool call 'c9'"),
    ([HumanMessage(content="hi"),
      AIMessage(content="", tool_calls=[{"name": "f", "args": {}, "id": None}])],
     "tool call without an id"),
    ([HumanMessage(content=[{"type": "audio", "data": "x"}]), AIMessage(content="ok")],
     "'audio' content block"),
    ([HumanMessage(content="hi"), from_openai({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{city: P"}}]})],
     "tool call 'c1' whose arguments are not a JSON object"),
    ([HumanMessage(content="hi"),
      from_openai({"role": "assistant", "content": None, "refusal": "I can't help."})],
     "refusal with no content .\"I can't help.\""),
])
def test_finetune_validation_names_the_first_problem(messages: list[Any], reason: str) -> None:
    """Each way a history can fail fine-tuning's rules is named."""
    with pytest.raises(InvalidExample, match=reason):
        finetune_example(messages)


def test_finetune_keeps_text_blocks_and_names() -> None:
    """Text content blocks become text, user blocks stay blocks, names are kept."""
    example = finetune_example([
        HumanMessage(content=["a", {"type": "text", "text": "b"}], name="ann"),
        AIMessage(content=[{"type": "text", "text": "ok"}]),
    ])
    assert example["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
         "name": "ann"},
        {"role": "assistant", "content": "ok"},
    ]


def test_export_follows_a_symlink_and_keeps_it(db: str, tmp_path: Path) -> None:
    """--out through a symlink replaces the file it points to; the link stays a link."""
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert run(["--db", db, "export", "--format", "jsonl", "--out", str(link)]).exit_code == 0
    assert link.is_symlink()
    assert len(read_jsonl(real)) == 7


def test_export_to_a_pipe_writes_in_place_and_reports_on_stderr(db: str, tmp_path: Path) -> None:
    """A FIFO (like /dev/stdout) is written in place, never replaced; the summary goes to stderr."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run(["--db", db, "export", "--format", "jsonl", "--out", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "wrote 7 messages" in result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert len(received[0].decode().splitlines()) == 7


def test_finetune_takes_provider_messages_as_fine_tuning_accepts_them() -> None:
    """A developer message is a system message there, and provider fields kept from a reply
    (a refusal, reasoning) stay out of the example."""
    example = finetune_example([
        from_openai({"role": "developer", "content": "Be brief."}),
        HumanMessage("2+2?"),
        from_openai({"role": "assistant", "content": "4", "reasoning_content": "2+2=4",
                     "refusal": None}),
    ])
    assert example["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
