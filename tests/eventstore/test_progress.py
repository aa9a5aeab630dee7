"""Long operations report progress to a callback, so a CLI can draw a bar."""

from __future__ import annotations

from chatledger.eventstore import EventStore, HumanMessage, MessageAppended


def _fill(store: EventStore, events: int) -> None:
    for start in range(0, events, 500):
        store.append(f"s{start % 7}", [MessageAppended(message=HumanMessage(f"m{i}"))
                                       for i in range(start, min(events, start + 500))])


def test_verify_reports_progress_for_every_event(store: EventStore) -> None:
    """verify(progress=fn) calls fn with counts that add up to the events checked."""
    _fill(store, 12_345)
    seen: list[int] = []
    report = store.verify(progress=seen.append)
    assert report.ok
    assert sum(seen) == report.events == 12_345
    assert len(seen) >= 2


def test_rebuild_reports_progress_for_every_event(store: EventStore) -> None:
    """rebuild(progress=fn) calls fn with counts that add up to the events replayed."""
    _fill(store, 2_000)
    seen: list[int] = []
    assert store.rebuild(progress=seen.append) == 2_000
    assert sum(seen) == 2_000
