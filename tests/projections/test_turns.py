"""A turn is one write: ``ChatHistory.record_turn``; its run names its messages by version."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from chatledger.eventstore import (
    AIMessage,
    ConcurrencyError,
    EventStore,
    HumanMessage,
    MessageAppended,
    RunRecorded,
    open_store,
)
from chatledger.projections import ChatHistory, Turn, recorded_turns

# Written by the release before runs referred to their messages (RunRecorded held copies).
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ledger-2026-11.db"


def _turn(text: str, answer: str, version: int | None, status: str = "ok") -> Turn:
    return Turn(run_id=f"run-{text}", input=[HumanMessage(text)], output=[AIMessage(answer)],
                status=status, history_version=version, model="m", latency_ms=1.5)


def test_a_turn_is_one_append_and_each_message_is_stored_once(store: EventStore) -> None:
    """Messages and run share one append; the run refers to them, it does not copy them."""
    history = ChatHistory("s", store)
    result = history.record_turn(_turn("hello there", "general kenobi", 0))
    assert result.version == 3 and len(result.positions) == 3
    records = store.read("s")
    run = records[-1].event
    assert isinstance(run, RunRecorded)
    assert (run.input_versions, run.output_versions) == ([1], [2])
    assert (run.input, run.output) == ([], [])
    stored = " ".join(str(r.event) for r in records)
    assert stored.count("general kenobi") == 1
    assert records[-1].meta == {"run_id": "run-hello there", "history_version": 0}


def test_merge_appends_after_turns_that_got_in_first(store: EventStore) -> None:
    """A turn that read version 0 while another was saved lands after it, naming its own
    messages' real versions and the version it read."""
    history = ChatHistory("s", store)
    history.record_turn(_turn("first", "one", 0))
    history.record_turn(_turn("second", "two", 0), on_conflict="merge")
    turns = recorded_turns(store.read("s"))
    assert [t.run.history_version for t in turns] == [0, 0]
    assert turns[1].run.input_versions == [4] and turns[1].run.output_versions == [5]
    assert [m.text for m in turns[1].input + turns[1].output] == ["second", "two"]
    assert [m.text for m in history.messages] == ["first", "one", "second", "two"]


def test_raise_refuses_a_stale_turn_and_saves_nothing(store: EventStore) -> None:
    """on_conflict="raise" keeps the session as it was when the turn read a stale version."""
    history = ChatHistory("s", store)
    history.record_turn(_turn("first", "one", 0))
    with pytest.raises(ConcurrencyError):
        history.record_turn(_turn("second", "two", 0), on_conflict="raise")
    assert history.version == 3


def test_a_failed_turn_keeps_its_input_in_the_run_only(store: EventStore) -> None:
    """A failed run adds no message to the history; its input and partial output stay in it."""
    history = ChatHistory("s", store)
    history.record_turn(Turn(run_id="r", input=[HumanMessage("hi")], output=[AIMessage("par")],
                             status="error", history_version=0, error="boom"))
    assert history.messages == []
    (turn,) = recorded_turns(store.read("s"))
    assert (turn.run.status, turn.run.error) == ("error", "boom")
    assert [m.text for m in turn.input + turn.output] == ["hi", "par"]


def test_async_record_turn_merges_too(store: EventStore) -> None:
    """arecord_turn follows the same plan as record_turn."""
    history = ChatHistory("s", store)

    async def run() -> list[str]:
        await history.arecord_turn(_turn("first", "one", 0))
        await history.arecord_turn(_turn("second", "two", 0))
        return [m.text for m in await history.aget_messages()]

    assert asyncio.run(run()) == ["first", "one", "second", "two"]


# -- a database written before runs referred to their messages -----------------------------
@pytest.fixture
def old_ledger(tmp_path: Path) -> str:
    """A copy of a ledger written by the previous release (runs held copies of messages)."""
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    return f"sqlite:///{path}"


def test_old_runs_are_upcast_to_versions(old_ledger: str) -> None:
    """Stored ``run_recorded`` rows read as runs that name their messages by version."""
    with open_store(old_ledger) as store:
        records = store.read("fixture")
        assert [r.type for r in records].count("run_recorded") == 3
        runs = [r.event for r in records if isinstance(r.event, RunRecorded)]
        assert [(r.input_versions, r.output_versions) for r in runs[:2]] == [([1], [2]),
                                                                             ([4], [5])]
        assert runs[2].status == "error" and [m.text for m in runs[2].input] == ["Are you there?"]
        turns = recorded_turns(records)
        by_version = {r.version: r.event for r in records}
        for turn in turns[:2]:
            expected = [by_version[v] for v in turn.run.input_versions + turn.run.output_versions]
            assert [MessageAppended(message=m) for m in turn.input + turn.output] == expected
        assert all(t.complete for t in turns)
