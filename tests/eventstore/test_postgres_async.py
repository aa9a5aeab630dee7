"""PostgreSQL: the async twins run on async connections and never block the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from chatledger.eventstore import (
    AIMessage,
    ConcurrencyError,
    HistoryCleared,
    HumanMessage,
    MessageAppended,
    Record,
    SessionKey,
    open_store,
)
from chatledger.eventstore.postgres import PostgresStore
from chatledger.eventstore.postgres._plans import lock_key
from tests.pgsupport import postgres_empty_schema_url, postgres_test_schema, postgres_url

pytestmark = pytest.mark.postgres

KEY = SessionKey(user_id="u1", conversation_id="c1")


@pytest.fixture
def app_name(tmp_path: Path) -> str:
    """An application_name unique to this test, to find its server connections."""
    return f"chatledger_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(tmp_path: Path, app_name: str) -> str:
    """A URL to a fresh, empty schema whose connections carry this test's application_name."""
    return (postgres_empty_schema_url(postgres_test_schema(tmp_path))
            + f"&application_name={app_name}")


def _connections(app_name: str) -> int:
    with psycopg.connect(postgres_url()) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (app_name,)).fetchone()
    assert row is not None
    return int(row[0])


def _released(app_name: str, within: float = 5.0) -> bool:
    """True once the server lists no connection of ``app_name``: a backend leaves
    pg_stat_activity a moment after its client closed the connection, not at once."""
    deadline = time.monotonic() + within
    while _connections(app_name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_async_twins_agree_with_the_sync_methods(pg: PostgresStore) -> None:
    """aappend, aread, aload_history and aload_history_at give what the sync methods give."""
    async def main() -> None:
        first = await pg.aappend(KEY, [MessageAppended(message=HumanMessage("hi")),
                                       MessageAppended(message=AIMessage("hello"))],
                                 expected_version=0, meta={"run_id": "r1"})
        assert first.version == 2
        assert first.positions == [r.position for r in pg.read(KEY)]
        assert first.positions[1] == first.positions[0] + 1
        await pg.aappend(KEY, [HistoryCleared()], expected_version=2)
        await pg.aappend(KEY, [MessageAppended(message=HumanMessage("again"))])
        assert await pg.aread(KEY) == pg.read(KEY)
        assert await pg.aread(KEY, after_version=1, until_version=3) == pg.read(
            KEY, after_version=1, until_version=3)
        assert await pg.aload_history(KEY) == pg.load_history(KEY) == (4, [HumanMessage("again")])
        for v in range(5):
            assert await pg.aload_history_at(KEY, version=v) == pg.load_history_at(KEY, version=v)
        moment = (await pg.aread(KEY))[1].recorded_at
        assert await pg.aload_history_at(KEY, time=moment) == pg.load_history_at(KEY, time=moment)
        with pytest.raises(ConcurrencyError):
            await pg.aappend(KEY, [MessageAppended(message=HumanMessage("stale"))],
                             expected_version=1)
        empty = await pg.aappend(KEY, [])
        assert (empty.version, empty.positions) == (4, [])
    asyncio.run(main())
    assert pg.verify().ok


def test_aappend_retried_with_same_ids_is_a_noop(pg: PostgresStore) -> None:
    """A retried aappend with the same event ids returns the original result and writes nothing."""
    ids = [str(uuid.uuid4())]
    events = [MessageAppended(message=HumanMessage("once"))]

    async def main() -> None:
        first = await pg.aappend(KEY, events, event_ids=ids)
        again = await pg.aappend(KEY, events, event_ids=ids)
        assert again.duplicate
        assert (again.version, again.positions) == (first.version, first.positions)
    asyncio.run(main())
    assert pg.version(KEY) == 1


def test_gathered_aappends_with_retries_leave_no_gaps(pg: PostgresStore) -> None:
    """40 concurrent aappend turns on one session, retrying stale versions: versions 1..80."""
    turns = 40
    conflicts = 0

    async def turn(i: int) -> None:
        nonlocal conflicts
        events = [MessageAppended(message=HumanMessage(f"q{i}")),
                  MessageAppended(message=AIMessage(f"a{i}"))]
        ids = [str(uuid.uuid4()) for _ in events]
        while True:
            version, _ = await pg.aload_history(KEY)
            try:
                await pg.aappend(KEY, events, expected_version=version, event_ids=ids)
                return
            except ConcurrencyError:
                conflicts += 1

    async def main() -> None:
        await asyncio.gather(*(turn(i) for i in range(turns)))
    asyncio.run(main())
    records = pg.read(KEY)
    assert [r.version for r in records] == list(range(1, 2 * turns + 1))
    texts = sorted(r.event.message.text for r in records if isinstance(r.event, MessageAppended))
    assert texts == sorted([f"q{i}" for i in range(turns)] + [f"a{i}" for i in range(turns)])
    assert conflicts > 0  # the turns really did race
    assert pg.verify().ok


def test_aappend_waiting_on_a_lock_leaves_the_loop_running(pg: PostgresStore) -> None:
    """While aappend waits for the stream's lock, other tasks of the loop keep running."""
    holder = psycopg.connect(postgres_url())
    holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                   (lock_key(pg.schema, SessionKey.coerce(KEY).stream_id),))
    # Should aappend ever block the loop, this releases the lock so the test fails, not hangs.
    safety = threading.Timer(15, holder.rollback)
    safety.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        tick_task = asyncio.create_task(ticker())
        append = asyncio.create_task(pg.aappend(KEY, [MessageAppended(message=HumanMessage("x"))]))
        await asyncio.sleep(0.3)
        assert not append.done()
        before = ticks
        await asyncio.sleep(0.1)
        assert ticks > before
        await asyncio.to_thread(holder.rollback)
        assert (await append).version == 1
        tick_task.cancel()

    try:
        asyncio.run(main())
    finally:
        safety.cancel()
        holder.close()


def test_each_event_loop_gets_a_pool_and_close_releases_them(url: str, app_name: str) -> None:
    """Async calls from several event loops work, and close() leaves no server connection behind."""
    store = open_store(url)

    async def main(i: int) -> int:
        await store.aappend(KEY, [MessageAppended(message=HumanMessage(f"m{i}"))])
        return (await store.aload_history(KEY))[0]

    assert [asyncio.run(main(i)) for i in range(3)] == [1, 2, 3]
    assert _connections(app_name) >= 1
    store.close()
    assert _released(app_name)


def test_aclose_inside_the_loop_releases_connections(url: str, app_name: str) -> None:
    """aclose() from async code closes this loop's pool and the sync pool."""
    async def main() -> None:
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        await store.aappend(KEY, [MessageAppended(message=HumanMessage("hi"))])
        await store.aclose()
    asyncio.run(main())
    assert _released(app_name)


def test_asubscribe_yields_backlog_then_new_commits(pg: PostgresStore) -> None:
    """asubscribe yields the stored events, then those appended while it waits, in order."""
    pg.append(KEY, [MessageAppended(message=HumanMessage("before"))])

    async def main() -> list[Record]:
        seen: list[Record] = []

        async def write() -> None:
            for i in range(5):
                await pg.aappend(KEY, [MessageAppended(message=HumanMessage(f"live{i}"))])

        writer: asyncio.Task[None] | None = None
        async for record in pg.asubscribe(timeout=10):
            seen.append(record)
            if writer is None:
                writer = asyncio.create_task(write())
            if len(seen) == 6:
                break
        assert writer is not None
        await writer
        return seen

    seen = asyncio.run(main())
    assert [r.position for r in seen] == [r.position for r in pg.read_all()]
    assert [r.event.message.text for r in seen
            if isinstance(r.event, MessageAppended)] == ["before"] + [f"live{i}" for i in range(5)]


def test_asubscribe_stops_after_an_idle_timeout(pg: PostgresStore) -> None:
    """With timeout=, asubscribe ends once no new event arrives in time."""
    pg.append(KEY, [MessageAppended(message=HumanMessage("only"))])

    async def main() -> list[int]:
        return [r.position async for r in pg.asubscribe(timeout=0.2)]
    assert asyncio.run(main()) == [pg.last_position()]


def test_repeated_asyncio_run_always_returns(pg: PostgresStore) -> None:
    """asyncio.run around concurrent async calls, 20 times over, always shuts its loop down."""
    pg.append(KEY, [MessageAppended(message=HumanMessage("hi"))])
    results: list[list[int]] = []

    async def burst() -> list[int]:
        loads = await asyncio.gather(*(pg.aload_history(KEY) for _ in range(6)))
        return [version for version, _ in loads]

    def runs() -> None:
        for _ in range(20):
            results.append(asyncio.run(burst()))

    thread = threading.Thread(target=runs, daemon=True)
    thread.start()
    thread.join(60)  # a loop that cannot shut down fails the test instead of hanging it
    assert not thread.is_alive()
    assert results == [[1] * 6] * 20
