"""A turn is one write: ``ChatHistory.record_turn``; its run names its messages by version."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace

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
from chatledger.projections import _history as history_module
from chatledger.projections import _turns as turns_module
from tests.pgsupport import at_once

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


# -- many turns at once on one session ------------------------------------------------------
MANY = 32


def _check_all_landed(store: EventStore, n: int) -> None:
    """Every turn's question and answer are in the history once, each run naming its own
    messages and the version its turn read."""
    texts = [m.text for m in ChatHistory("s", store).messages]
    assert sorted(texts) == sorted([f"q{i}" for i in range(n)] + [f"a{i}" for i in range(n)])
    turns = recorded_turns(store.read("s"))
    assert len(turns) == n and all(t.run.status == "ok" and t.complete for t in turns)
    for t in turns:
        i = t.run.run_id.removeprefix("run-q")
        assert [m.text for m in t.input + t.output] == [f"q{i}", f"a{i}"]
        assert t.run.history_version == 0 < t.run.input_versions[0]
        assert t.run.output_versions == [t.run.input_versions[0] + 1]


def test_merge_lands_every_one_of_many_turns_racing_in_threads(store: EventStore) -> None:
    """Turns that all read the empty session and save at once all land under "merge"."""
    history = ChatHistory("s", store)
    errors = at_once(lambda i: history.record_turn(_turn(f"q{i}", f"a{i}", 0)), MANY)
    assert errors == []
    _check_all_landed(store, MANY)


def test_merge_lands_every_one_of_many_async_turns(store: EventStore) -> None:
    """The same on the async path: a gather of arecord_turn calls all land."""
    history = ChatHistory("s", store)

    async def run() -> list[object]:
        return await asyncio.gather(*(history.arecord_turn(_turn(f"q{i}", f"a{i}", 0))
                                      for i in range(MANY)), return_exceptions=True)

    assert [r for r in asyncio.run(run()) if isinstance(r, BaseException)] == []
    _check_all_landed(store, MANY)


def test_raise_still_refuses_all_but_one_of_many_racing_turns(store: EventStore) -> None:
    """Strict mode: of turns that all read version 0, one lands and the rest raise."""
    history = ChatHistory("s", store)
    errors = at_once(lambda i: history.record_turn(_turn(f"q{i}", f"a{i}", 0),
                                                   on_conflict="raise"), 8)
    assert len(errors) == 7 and all(isinstance(e, ConcurrencyError) for e in errors)
    assert history.version == 3


def _conflict(actual: int) -> ConcurrencyError:
    return ConcurrencyError("session_id=s", actual - 1, actual)


def test_merge_keeps_trying_as_long_as_the_session_moves() -> None:
    """Each lost race means another turn landed: the plan never runs out of tries, however
    long the session stays busy, and its waits stay short and random."""
    now = [0.0]
    plan = turns_module.turn_appends(_turn("q", "a", 0), 0, "merge", clock=lambda: now[0])
    wait, _, expected = next(plan)
    assert (wait, expected) == (0.0, 0)
    for actual in range(3, 3000, 3):
        now[0] += 1.0  # far past the stall deadline overall, but the session keeps moving
        wait, events, expected = plan.send(_conflict(actual))
        assert expected == actual
        assert 0.0 <= wait <= turns_module.MERGE_BACKOFF_CAP_SECONDS
        run = events[2]
        assert isinstance(run, RunRecorded) and run.input_versions == [actual + 1]
        assert run.history_version == 0


def test_merge_gives_up_on_a_store_that_stops_moving() -> None:
    """A store that keeps reporting conflicts at one version fails the turn after
    MERGE_STALL_SECONDS, with a ConcurrencyError that says so."""
    now = [0.0]
    plan = turns_module.turn_appends(_turn("q", "a", 0), 0, "merge", clock=lambda: now[0])
    next(plan)
    plan.send(_conflict(5))
    while now[0] < turns_module.MERGE_STALL_SECONDS - 1:
        now[0] += 1.0
        plan.send(_conflict(5))
    now[0] += 1.0
    with pytest.raises(ConcurrencyError, match=r"MERGE_STALL_SECONDS") as caught:
        plan.send(_conflict(5))
    assert caught.value.actual_version == 5
    assert "without moving past version 5 for 30s" in str(caught.value)


def test_async_merge_waits_without_blocking_the_loop(
        store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """arecord_turn's waits between tries are asyncio sleeps, never time.sleep."""
    def blocking_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep called on the async path")

    monkeypatch.setattr(history_module, "time", SimpleNamespace(sleep=blocking_sleep))
    monkeypatch.setattr(turns_module, "MERGE_BACKOFF_SECONDS", 0.05)
    history = ChatHistory("s", store)
    history.record_turn(_turn("q0", "a0", 0))
    ticks = 0

    async def tick(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def run() -> None:
        done = asyncio.Event()
        ticker = asyncio.create_task(tick(done))
        await history.arecord_turn(_turn("q1", "a1", 0))
        done.set()
        await ticker

    asyncio.run(run())
    assert [m.text for m in history.messages] == ["q0", "a0", "q1", "a1"]
    assert ticks > 1


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
