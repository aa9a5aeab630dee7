"""Catch-up and cross-process reads: projections follow the log whoever wrote it.

The workloads below also run as a script (``python test_projection_catch_up.py URL WORKLOAD``),
so the same writes can come from another process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

from chatledger.eventstore import (
    AIMessage,
    AnyMessage,
    ChatledgerError,
    EventStore,
    HistoryCleared,
    HumanMessage,
    Message,
    MessageAppended,
    RunRecorded,
    SessionForked,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
    from_langchain_dict,
    open_store,
    to_langchain_dict,
)
from chatledger.projections import ChatHistory, fold, messages_of

SCRIPT = Path(__file__).resolve()
SEEDED = SessionKey(user_id="seed", conversation_id="1")
CONVERSATION: list[AnyMessage] = [
    SystemMessage(content="You are terse."),
    HumanMessage(content=["what is", {"type": "text", "text": " 6*7?"}], name="ann", id="h1"),
    AIMessage(content="", tool_calls=[{"name": "calc", "args": {"expr": "6*7"}, "id": "c1"}],
              usage_metadata={"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}),
    ToolMessage(content="42", tool_call_id="c1", artifact={"exact": True}),
    AIMessage(content="42", response_metadata={"finish_reason": "stop"}, id="a2"),
]
TURNS_PER_WRITER = 40


# -- workloads (run here or in a child process) -------------------------------------------


def bulk_load(url: str) -> int:
    """Append a mixed workload with projections off; returns the number of events written."""
    written = 0
    with open_store(url, projections=False) as store:
        for i in range(4):
            key = SessionKey(user_id="bulk", conversation_id=str(i))
            result = store.append(key, [MessageAppended(message=m) for m in CONVERSATION[: 2 + i]])
            written += len(result.positions)
        key = SessionKey(user_id="bulk", conversation_id="0")
        for events in (
            [HistoryCleared(reason="bulk")],
            [MessageAppended(message=HumanMessage(content="after the clear"))],
            [SessionTagged(added=["imported", "bulk"]), SessionTagged(removed=["bulk"])],
            [RunRecorded(run_id=str(uuid.uuid4()), status="ok", history_version=4)],
        ):
            written += len(store.append(key, events).positions)
        written += len(store.erase(SessionKey(user_id="bulk", conversation_id="3"),
                                   versions=[2]).positions)
        written += len(store.append(SEEDED, [MessageAppended(message=AIMessage(content="bulk"))],
                                    expected_version=2).positions)
        written += len(store.erase(SEEDED, versions=[1]).positions)
    return written


def write_conversation(url: str, session: str) -> None:
    """Write CONVERSATION through ChatHistory by URL, clear it, add a turn, and fork it."""
    with open_store(url) as store:
        history = ChatHistory(session, store)
        history.add_messages(CONVERSATION[:2])
        history.add_messages(CONVERSATION[2:])
        history.clear()
        history.add_user_message("again")
        history.fork(f"{session}-fork", at_version=5)


def read_conversation(url: str, session: str) -> str:
    """The session's version, messages and every as_of, as JSON."""
    with open_store(url) as store:
        history = ChatHistory(session, store)
        return json.dumps({
            "version": history.version,
            "messages": [to_langchain_dict(m) for m in history.messages],
            "as_of": [[to_langchain_dict(m) for m in history.as_of(version=v)]
                      for v in range(history.version + 1)],
        })


def append_turns(url: str, session: str, writer: str) -> None:
    """Append TURNS_PER_WRITER two-message turns, one append per turn."""
    with open_store(url) as store:
        history = ChatHistory(session, store)
        for i in range(TURNS_PER_WRITER):
            history.add_messages([HumanMessage(content=f"{writer} q{i}"),
                                  AIMessage(content=f"{writer} a{i}")])


def _child(url: str, workload: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCRIPT), url, workload, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_child(url: str, workload: str, *args: str) -> str:
    proc = _child(url, workload, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


# -- checks --------------------------------------------------------------------------------


def _seed(url: str) -> None:
    with open_store(url) as store:
        ChatHistory(SEEDED, store).add_messages(CONVERSATION[:2])


def _projection_is_the_fold(store: EventStore) -> None:
    """Every session's projected history and catalog row equal a fold of its log."""
    rows = store.sessions(limit=1000)
    assert rows
    for row in rows:
        records = store.read(row.key)
        version, messages = store.load_history(row.key)
        assert version == len(records) == row.version
        assert messages == messages_of(fold(records)), row.stream_id
        assert row.message_count == len(messages), row.stream_id
        for v in range(version + 1):
            assert store.load_history_at(row.key, version=v)[1] == messages_of(fold(records[:v]))
    assert store.verify().ok


def _bulk_results_are_projected(store: EventStore, *, live: tuple[Message, ...] = ()) -> None:
    """The bulk workload's effects (clear, tags, erasures) show, and survive a rebuild."""
    _projection_is_the_fold(store)
    bulk0 = SessionKey(user_id="bulk", conversation_id="0")
    assert store.load_history(bulk0)[1] == [HumanMessage(content="after the clear")]
    info = store.session(bulk0)
    assert info is not None and info.tags == ["imported"]
    assert store.load_history(SessionKey(user_id="bulk", conversation_id="3"))[1] == [
        CONVERSATION[0], *CONVERSATION[2:5]]
    assert store.load_history(SEEDED)[1] == [CONVERSATION[1], AIMessage(content="bulk"), *live]
    snapshot = [(r, store.load_history(r.key)) for r in store.sessions(limit=1000)]
    store.rebuild()
    assert [(r, store.load_history(r.key)) for r in store.sessions(limit=1000)] == snapshot


# -- catch-up ------------------------------------------------------------------------------


def test_projection_less_appends_catch_up_on_next_open(db_url: str) -> None:
    """Appends made with projections=False are projected when the store is next opened normally."""
    _seed(db_url)
    bulk_load(db_url)
    path = db_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as raw:
        log, history = raw.execute(
            "SELECT (SELECT max(position) FROM events), "
            "(SELECT position FROM checkpoints WHERE name = 'history')").fetchone()
    assert 0 <= history < log, "the bulk load left the projection behind"
    with open_store(db_url) as store:
        _bulk_results_are_projected(store)


def test_catch_up_applies_exactly_the_missed_events(db_url: str) -> None:
    """catch_up() on an open store applies each missed event once, then has nothing to do."""
    _seed(db_url)
    with open_store(db_url) as store:
        written = bulk_load(db_url)
        assert store.catch_up() == written
        assert store.catch_up() == 0
        _bulk_results_are_projected(store)


def test_an_append_catches_up_before_it_projects(db_url: str) -> None:
    """A normal append after projection-less ones first applies them, so nothing is skipped."""
    _seed(db_url)
    with open_store(db_url) as store:
        bulk_load(db_url)
        ChatHistory(SEEDED, store).add_user_message("live")
        assert store.catch_up() == 0
        _bulk_results_are_projected(store, live=(HumanMessage(content="live"),))


def test_projection_less_appends_from_another_process_catch_up(db_url: str) -> None:
    """Projection-less appends made by another process are projected on the next normal open."""
    _seed(db_url)
    written = int(_run_child(db_url, "bulk_load"))
    assert written > 0
    with open_store(db_url) as store:
        _bulk_results_are_projected(store)


def test_open_store_catches_up_appends_another_process_made(db_url: str) -> None:
    """A store open while another process bulk-loads catches up with catch_up()."""
    _seed(db_url)
    with open_store(db_url) as store:
        written = int(_run_child(db_url, "bulk_load"))
        assert store.catch_up() == written
        _bulk_results_are_projected(store)


def test_rebuild_on_a_projection_less_store_projects_everything(db_url: str) -> None:
    """rebuild() replays the whole log even on a store opened with projections=False."""
    _seed(db_url)
    bulk_load(db_url)
    with open_store(db_url, projections=False) as store:
        store.rebuild()
        _bulk_results_are_projected(store)


def test_a_projection_less_store_never_answers_or_forks_from_stale_tables(db_url: str) -> None:
    """With projections off, history reads and forks either refuse or agree with the log."""
    _seed(db_url)
    with open_store(db_url, projections=False) as store:
        history = ChatHistory(SEEDED, store)
        history.add_user_message("written with projections off")
        try:
            version, messages = store.load_history(SEEDED)
        except ChatledgerError:
            pass
        else:
            assert (version, messages) == (3, messages_of(fold(store.read(SEEDED))))
        try:
            child = history.fork("branch")
        except ChatledgerError:
            assert store.version("branch") == 0
        else:
            event = child.events()[0].event
            assert isinstance(event, SessionForked)
            inherited = store.read(SEEDED, until_version=event.parent_version)
            assert event.messages == messages_of(fold(inherited))


# -- across processes ----------------------------------------------------------------------


def test_history_written_by_another_process_reads_back(db_url: str) -> None:
    """A history (clear and fork included) written by a child process reads correctly here."""
    _run_child(db_url, "write_conversation", "s")
    with open_store(db_url) as store:
        history = ChatHistory("s", store)
        assert history.version == 7
        assert history.messages == [HumanMessage(content="again")]
        assert history.as_of(version=5) == CONVERSATION
        assert history.as_of(version=2) == CONVERSATION[:2]
        assert history.as_of(version=6) == []
        assert ChatHistory("s-fork", store).messages == CONVERSATION
        _projection_is_the_fold(store)


def test_history_written_here_reads_back_in_another_process(db_url: str) -> None:
    """A history written here is read by a child process with the same messages and versions."""
    write_conversation(db_url, "s")
    seen = json.loads(_run_child(db_url, "read_conversation", "s"))
    expected = json.loads(read_conversation(db_url, "s"))
    assert seen == expected
    assert [from_langchain_dict(m) for m in seen["as_of"][5]] == CONVERSATION
    assert [from_langchain_dict(m) for m in seen["messages"]] == [HumanMessage(content="again")]


def test_concurrent_writers_in_two_processes_lose_nothing(db_url: str) -> None:
    """Two processes appending turns to one session keep every turn whole and in order."""
    open_store(db_url).close()
    writers = [_child(db_url, "append_turns", "s", name) for name in ("w1", "w2")]
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with open_store(db_url) as store:
        messages = ChatHistory("s", store).messages
        assert len(messages) == 4 * TURNS_PER_WRITER
        for i in range(0, len(messages), 2):
            writer, question = messages[i].text.split(" ")
            assert messages[i + 1] == AIMessage(content=f"{writer} a{question[1:]}")
        for name in ("w1", "w2"):
            mine = [m.text for m in messages if m.text.startswith(f"{name} q")]
            assert mine == [f"{name} q{i}" for i in range(TURNS_PER_WRITER)]
        _projection_is_the_fold(store)
        before = store.load_history("s")
        store.rebuild()
        assert store.load_history("s") == before


WORKLOADS = {
    "bulk_load": bulk_load,
    "write_conversation": write_conversation,
    "read_conversation": read_conversation,
    "append_turns": append_turns,
}


if __name__ == "__main__":
    output = WORKLOADS[sys.argv[2]](sys.argv[1], *sys.argv[3:])  # type: ignore[operator]
    if output is not None:
        print(output)
