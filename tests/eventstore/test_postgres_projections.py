"""PostgreSQL: the projections behave exactly as on SQLite (same histories, catalog, rebuild)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    Event,
    EventStore,
    HistoryCleared,
    HumanMessage,
    MessageAppended,
    PayloadErased,
    RunRecorded,
    SessionForked,
    SessionKey,
    SessionTagged,
    StoreError,
    open_store,
)

pytestmark = pytest.mark.postgres

TEXT = st.text(alphabet="abcxyz %/=é", max_size=8)
TAG = st.sampled_from(["red", "green", "blue"])
EVENT = st.one_of(
    st.builds(lambda t: MessageAppended(message=HumanMessage(t)), TEXT),
    st.builds(lambda t: MessageAppended(message=AIMessage(t)), TEXT),
    st.builds(lambda r: HistoryCleared(reason=r), st.none() | TEXT),
    st.builds(lambda a, r: SessionTagged(added=a, removed=r),
              st.lists(TAG, max_size=2), st.lists(TAG, max_size=2)),
    st.builds(lambda t: SessionForked(parent={"session_id": "p"}, parent_version=1,
                                      messages=[HumanMessage(t), AIMessage(t)]), TEXT),
    st.builds(lambda t: RunRecorded(run_id=t or "r", status="ok", output=[AIMessage(t)]), TEXT),
)
# An operation is a batch of events for one append, or an erasure of the n-th erasable event.
OPERATION = st.one_of(st.lists(EVENT, min_size=1, max_size=3), st.integers(0, 50))
OPERATIONS = st.lists(OPERATION, min_size=1, max_size=12)
CONTENT = ("message_appended", "session_forked", "run_recorded")


def apply(store: EventStore, key: SessionKey, operations: list[Any]) -> None:
    """Run the operations on one store: appends, and erasures of message-bearing events."""
    for op in operations:
        if isinstance(op, int):
            erasable = [r.version for r in store.read(key)
                        if r.type in CONTENT and not isinstance(r.event, PayloadErased)]
            if erasable:
                store.erase(key, versions=[erasable[op % len(erasable)]], reason="asked")
        else:
            events: list[Event] = op
            store.append(key, events, meta={"op": "test"})


def observe(store: EventStore, key: SessionKey) -> dict[str, Any]:
    """Everything a user can read about one session, minus positions, ids and clocks."""
    head = store.version(key)
    info = store.session(key)
    return {
        "log": [(r.version, r.type, r.event, r.meta) for r in store.read(key)],
        "current": store.load_history(key),
        "as_of": [store.load_history_at(key, version=v) for v in range(head + 1)],
        "catalog": None if info is None else (info.key, info.version, info.message_count,
                                              info.tags),
        "ok": store.verify(key).ok,
    }


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operations=OPERATIONS)
def test_postgres_and_sqlite_agree_event_for_event(pg: EventStore, operations: list[Any]) -> None:
    """The same appends, clears, tags, forks, runs and erasures read back identically on both."""
    key = SessionKey(user_id="u", conversation_id=uuid.uuid4().hex)
    with open_store("sqlite://:memory:") as lite:
        apply(lite, key, operations)
        apply(pg, key, operations)
        expected = observe(lite, key)
        assert observe(pg, key) == expected
        assert expected["ok"]
        lite.rebuild()
        pg.rebuild()
        assert observe(pg, key) == observe(lite, key) == expected


def test_rebuild_equals_incremental_projection(pg: EventStore) -> None:
    """Dropping and replaying the projections gives back exactly the incremental tables."""
    keys = [SessionKey(user_id=str(u), conversation_id=str(c)) for u in range(3) for c in range(2)]
    for i, key in enumerate(keys):
        pg.append(key, [MessageAppended(message=HumanMessage(f"q{i}")),
                        MessageAppended(message=AIMessage(f"a{i}"))])
        pg.append(key, [SessionTagged(added=["x", f"t{i}"])])
        if i % 2:
            pg.append(key, [HistoryCleared(), MessageAppended(message=HumanMessage("after"))])
    pg.erase(keys[0], versions=[1])
    before = {k: observe(pg, k) for k in keys}
    sessions = pg.sessions(limit=100)
    assert pg.rebuild() == len(pg.read_all())
    assert {k: observe(pg, k) for k in keys} == before
    assert pg.sessions(limit=100) == sessions
    assert pg.catch_up() == 0


def _lagging_then_caught_up(url: str) -> tuple[list[Any], list[Any], int]:
    key = SessionKey(session_id="lag")
    with open_store(url, projections=False) as writer:
        writer.append(key, [MessageAppended(message=HumanMessage("one"))])
        writer.append(key, [SessionTagged(added=["t"]), HistoryCleared()])
        writer.append(key, [MessageAppended(message=AIMessage("two"))])
        info = writer.session(key)
        assert info is not None
        # the tables lag until a history read, which catches them up first
        lagging = [info.version, info.message_count, info.tags, writer.load_history(key)]
    with open_store(url) as reader:
        info = reader.session(key)
        assert info is not None
        caught_up = [info.message_count, info.tags, reader.load_history(key),
                     [reader.load_history_at(key, version=v) for v in range(5)]]
        return lagging, caught_up, reader.catch_up()


def test_unprojected_appends_are_caught_up_as_on_sqlite(url: str, tmp_path: Path) -> None:
    """Appends made with projections=False are projected before a history read, as on SQLite."""
    lite = _lagging_then_caught_up(f"sqlite:///{tmp_path / 'lag.db'}")
    assert _lagging_then_caught_up(url) == lite
    lagging, caught_up, again = lite
    assert lagging == [4, 0, [], (4, [AIMessage("two")])]
    assert caught_up[:3] == [1, ["t"], (4, [AIMessage("two")])]
    assert again == 0


def test_async_history_reads_catch_up_without_inline_projections(url: str) -> None:
    """aload_history and aload_history_at on a projections=False store see every event."""
    key = SessionKey(session_id="async-lag")
    with open_store(url, projections=False) as raw:
        raw.append(key, [MessageAppended(message=HumanMessage("one")), HistoryCleared(),
                         MessageAppended(message=AIMessage("two"))])

        async def main() -> tuple[Any, Any]:
            return (await raw.aload_history(key), await raw.aload_history_at(key, version=1))
        assert asyncio.run(main()) == ((3, [AIMessage("two")]), (1, [HumanMessage("one")]))
        assert raw.catch_up() == 0


def test_append_behind_a_lagging_checkpoint_catches_up_first(url: str) -> None:
    """A projecting append after unprojected ones applies the missed events in its transaction."""
    key = SessionKey(session_id="mixed")
    with open_store(url) as projecting, open_store(url, projections=False) as raw:
        raw.append(key, [MessageAppended(message=HumanMessage("raw1"))])
        raw.append("other", [MessageAppended(message=HumanMessage("elsewhere"))])
        assert projecting.stats()["projected_messages"] == 0  # the tables lag behind the log
        projecting.append(key, [MessageAppended(message=AIMessage("projected"))])
        assert projecting.stats()["projected_messages"] == 2  # this stream caught up first
        assert projecting.load_history(key) == (2, [HumanMessage("raw1"), AIMessage("projected")])
        assert projecting.load_history("other") == (1, [HumanMessage("elsewhere")])
        assert projecting.catch_up() == 0
        assert projecting.stats()["projected_messages"] == 3


def test_history_as_of_a_recorded_time_is_the_last_version_by_then(pg: EventStore) -> None:
    """load_history_at(time=t) gives the last version recorded at or before t."""
    key = SessionKey(session_id="timed")
    for i in range(4):
        pg.append(key, [MessageAppended(message=HumanMessage(f"m{i}"))])
    records = pg.read(key)
    for record in records:
        version = max(r.version for r in records if r.recorded_at <= record.recorded_at)
        at, messages = pg.load_history_at(key, time=record.recorded_at)
        assert at == version
        assert messages == [HumanMessage(f"m{i}") for i in range(version)]
        assert pg.read(key, until_time=record.recorded_at) == records[:version]
    earliest = records[0].recorded_at.replace(year=2000)
    assert pg.load_history_at(key, time=earliest) == (0, [])


def test_a_read_only_store_names_a_lagging_projection_and_writes_nothing(url: str) -> None:
    """A read-only store cannot catch a lagging projection up: every history read says so (as
    SQLite's does) instead of the server refusing an INSERT, and purge() is refused too."""
    key = SessionKey(session_id="ro-lag")
    with open_store(url, projections=False) as raw:
        raw.append(key, [MessageAppended(message=HumanMessage("one"))])
    with open_store(url, readonly=True) as ro:
        calls = [lambda: ro.load_history(key), lambda: ro.load_history_at(key, version=1),
                 lambda: asyncio.run(ro.aload_history(key)),
                 lambda: asyncio.run(ro.aload_history_at(key, version=1)), ro.catch_up]
        for call in calls:
            with pytest.raises(StoreError, match=r"lags the log .* opened read-only: open it "
                                                 r"for writing once"):
                call()
        with pytest.raises(StoreError, match="read-only"):
            ro.purge()
    with open_store(url) as writer:
        assert writer.load_history(key) == (1, [HumanMessage("one")])
