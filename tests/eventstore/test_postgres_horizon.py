"""PostgreSQL: positions from transaction ids, read up to the horizon of running transactions.

A reader must never see an event while a transaction that may still commit a lower position is
running; once that transaction ends, everything comes through in position order.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chatledger.eventstore import (
    AIMessage,
    HumanMessage,
    InvalidInputError,
    MessageAppended,
    Record,
    SessionKey,
    StoreError,
    _codec,
    open_store,
)
from chatledger.eventstore._append import prepare
from chatledger.eventstore._projection import InsertRows, projection_ops
from chatledger.eventstore.postgres import PostgresStore
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._plans import Plan
from tests.pgsupport import at_once, postgres_schema_url, postgres_test_schema, postgres_url

pytestmark = pytest.mark.postgres


V1_INSERT_EVENT = (
    "INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data, meta,"
    " payload_digest, digest, chain) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


def _say(store: PostgresStore, key: str, text: str) -> list[int]:
    return store.append(key, [MessageAppended(message=HumanMessage(text))]).positions


def _paused(plan: Plan[Any], reached: threading.Event, go: threading.Event) -> Plan[Any]:
    """``plan``, stopping after its first batch (transaction id taken) until ``go`` is set."""
    batch = next(plan)
    results = yield batch
    reached.set()
    assert go.wait(20)
    while True:
        try:
            batch = plan.send(results)
        except StopIteration as stop:
            return stop.value
        results = yield batch


def test_a_reader_never_sees_past_an_append_still_running(pg: PostgresStore) -> None:
    """An append holding an older transaction id hides later commits until it commits first."""
    _say(pg, "before", "b")
    seen_before = pg.last_position()
    key = SessionKey(session_id="slow")
    prepared, meta = prepare([MessageAppended(message=HumanMessage("slow"))], None, None)
    reached, go = threading.Event(), threading.Event()
    slow: list[Any] = []
    plan = _paused(pg._append_plan(key, prepared, meta, None, False), reached, go)
    thread = threading.Thread(target=lambda: slow.append(pg._run("append", plan)))
    thread.start()
    try:
        assert reached.wait(10)
        fast = _say(pg, "fast", "fast")  # commits first, with a newer transaction id
        assert [r.stream_id for r in pg.read("fast")] == ["session_id=fast"]
        # Committed, yet behind the horizon: the slow append could still commit below it.
        assert [r.position for r in pg.read_all(after_position=seen_before)] == []
        assert pg.last_position() == seen_before
        tail = pg.subscribe(after_position=seen_before, timeout=10)
        go.set()
        thread.join(10)
    finally:
        go.set()
        thread.join(10)
    assert slow and slow[0].positions[0] < fast[0]
    got = [next(tail), next(tail)]
    tail.close()
    assert [r.stream_id for r in got] == ["session_id=slow", "session_id=fast"]
    assert [r.position for r in pg.read_all(after_position=seen_before)] == [
        slow[0].positions[0], fast[0]]
    assert pg.last_position() == fast[0]


def test_a_foreign_transaction_holds_readers_back_until_it_ends(pg: PostgresStore) -> None:
    """Any transaction holding an id (not chatledger's, no NOTIFY) delays readers, never forever."""
    start = pg.last_position()
    with psycopg.connect(postgres_url()) as foreign:
        foreign.execute("SELECT pg_current_xact_id()")  # an open transaction with an id
        positions = _say(pg, "s", "while held")
        assert pg.read_all(after_position=start) == []
        # Reads by session are not held back.
        assert [r.position for r in pg.read("s")] == positions
        assert pg.load_history("s") == (1, [HumanMessage("while held")])
        seen: list[Record] = []
        tail = pg.subscribe(after_position=start, timeout=10)
        reader = threading.Thread(target=lambda: seen.append(next(tail)))
        reader.start()
        time.sleep(0.3)
        assert seen == []  # the tail waits too
        foreign.rollback()  # ends without a notification: the tail's timer picks it up
        reader.join(10)
    tail.close()
    assert [r.position for r in seen] == positions
    assert [r.position for r in pg.read_all(after_position=start)] == positions


def test_a_rebuild_holds_appends_off_but_not_reads(pg: PostgresStore) -> None:
    """While a rebuild's table lock is held, an append waits (then lands) and reads go on."""
    _say(pg, "s", "before")
    done: list[Any] = []
    with psycopg.connect(postgres_url(), options=f"-c search_path={pg.schema}") as rebuilding:
        rebuilding.execute(SQL.LOCK_LOG)  # what rebuild() takes first
        writer = threading.Thread(target=lambda: done.append(_say(pg, "s", "during")))
        writer.start()
        time.sleep(0.3)
        assert done == []  # the append waits for the rebuild
        assert pg.load_history("s") == (1, [HumanMessage("before")])
        assert len(pg.read_all()) == 1
        rebuilding.rollback()
        writer.join(10)
    assert len(done) == 1
    assert pg.load_history("s") == (2, [HumanMessage("before"), HumanMessage("during")])


def test_positions_grow_with_versions_and_across_streams(pg: PostgresStore) -> None:
    """A later append, to the same stream or another, always gets larger positions."""
    positions = []
    for i in range(20):
        positions += pg.append(f"s{i % 3}", [MessageAppended(message=HumanMessage(f"q{i}")),
                                             MessageAppended(message=AIMessage(f"a{i}"))]
                               ).positions
    assert positions == sorted(set(positions))
    for k in range(3):
        records = pg.read(f"s{k}")
        assert [r.position for r in records] == sorted(r.position for r in records)
    assert [r.position for r in pg.read_all()] == positions


def test_an_append_too_big_for_one_transaction_is_refused(pg: PostgresStore) -> None:
    """More events than one transaction's position range: InvalidInputError, nothing written."""
    events = [MessageAppended(message=HumanMessage("x"))] * (SQL.MAX_APPEND + 1)
    with pytest.raises(InvalidInputError, match="at most 1,048,576 events"):
        pg.append("big", events)
    assert pg.version("big") == 0


# -- migrating a version-1 schema ----------------------------------------------------------


def _v1_log(conn: psycopg.Connection[Any]) -> None:
    """A version-1 schema holding three appends made as version 1 made them.

    Positions 1..3 from the 'log' counter; the history checkpoint at 2, so the third event has
    not been projected yet (as after a ``projections=False`` append).
    """
    with conn.transaction():
        conn.execute(SQL.MIGRATIONS_TABLE)
        conn.execute(SQL.MIGRATIONS[0][1])
        conn.execute(SQL.RECORD_MIGRATION, (1,))
    key = SessionKey(session_id="old")
    sid = key.stream_id
    chain = _codec.GENESIS
    now = "2026-01-01T00:00:00.000000Z"
    with conn.transaction():
        for position, text in enumerate(["one", "two", "three"], start=1):
            (p,), meta = prepare([MessageAppended(message=HumanMessage(text))], None, None)
            unsalted = _codec.payload_digest(p.data.encode())  # version 1 had no salts
            digest = _codec.digest_of(position, sid, position, p.event_id, p.type, now,
                                      unsalted, meta)
            chain = _codec.chain_of(chain, digest)
            conn.execute(V1_INSERT_EVENT, (sid, position, position, p.event_id, p.type, now,
                                           p.data, meta, unsalted, digest, chain))
            if position <= 2:
                (insert,), _ = projection_ops(sid, [(position, p.event)])
                assert isinstance(insert, InsertRows)
                conn.cursor().executemany(SQL.INSERT_HISTORY, insert.rows)
        conn.execute("INSERT INTO streams (stream_id, key, version, chain, created_at, "
                     "updated_at, message_count) VALUES (%s, %s, 3, %s, %s, %s, 2)",
                     (sid, _codec.encode(key.parts).decode(), chain, now, now))
        conn.execute("INSERT INTO stream_keys (name, value, stream_id) VALUES (%s, %s, %s)",
                     ("session_id", "old", sid))
        conn.execute("UPDATE checkpoints SET position = 3 WHERE name = 'log'")
        conn.execute("UPDATE checkpoints SET position = 2 WHERE name = 'history'")


@pytest.fixture
def v1(tmp_path: Path) -> tuple[str, str]:
    """(schema, URL) of a schema holding a version-1 log."""
    schema = postgres_test_schema(tmp_path)
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    with psycopg.connect(postgres_url(), autocommit=True,
                         options=f"-c search_path={schema}") as conn:
        _v1_log(conn)
    return schema, postgres_schema_url(schema)


def test_a_version_1_log_migrates_and_keeps_its_order(v1: tuple[str, str]) -> None:
    """Opening a version-1 schema migrates it: digests verify, order holds, the lag is caught up."""
    schema, url = v1
    with open_store(url) as store:
        assert store.verify().ok
        assert [r.position for r in store.read_all()] == [1, 2, 3]
        assert store.load_history("old") == (3, [HumanMessage("one"), HumanMessage("two"),
                                                 HumanMessage("three")])
        new = store.append("old", [MessageAppended(message=AIMessage("four"))])
        assert new.positions[0] > 3
        assert [r.version for r in store.read_all()] == [1, 2, 3, 4]
        assert store.verify().ok
    with psycopg.connect(postgres_url(), options=f"-c search_path={schema}") as conn:
        assert conn.execute("SELECT version FROM chatledger_migrations ORDER BY version"
                            ).fetchall() == [(1,), (2,), (3,), (4,)]
        assert conn.execute("SELECT to_regclass('checkpoints')").fetchone() == (None,)


def test_a_version_1_log_is_migrated_by_a_writable_open_only(v1: tuple[str, str]) -> None:
    """A read-only open refuses a version-1 schema untouched, naming the fix; a writable open
    migrates it at once (as SQLite upgrades an old file), without waiting for a write."""
    schema, url = v1

    def applied() -> list[Any]:
        with psycopg.connect(postgres_url(), options=f"-c search_path={schema}") as conn:
            return conn.execute("SELECT version FROM chatledger_migrations ORDER BY version"
                                ).fetchall()
    with pytest.raises(StoreError, match="schema version 1; open it for writing once"):
        open_store(url, readonly=True)
    assert applied() == [(1,)]
    open_store(url).close()
    assert applied() == [(1,), (2,), (3,), (4,)]
    with open_store(url, readonly=True) as reader:
        assert reader.version("old") == 3 and reader.verify().ok


def test_two_stores_migrating_at_once_apply_version_2_once(v1: tuple[str, str]) -> None:
    """Two stores (own connections) opening one version-1 schema together: both open, and
    version 2 is recorded once."""
    schema, url = v1
    stores: list[Any] = []
    errors = at_once(lambda _: stores.append(open_store(url)), 2, timeout=30)
    try:
        assert errors == []
        assert [s.load_history("old")[0] for s in stores] == [3, 3]
    finally:
        for s in stores:
            s.close()
    with psycopg.connect(postgres_url(), options=f"-c search_path={schema}") as conn:
        assert conn.execute("SELECT version FROM chatledger_migrations ORDER BY version"
                            ).fetchall() == [(1,), (2,), (3,), (4,)]


def test_a_version_3_ledger_reads_as_is_and_keeps_serving_version_3_clients(
        tmp_path: Path) -> None:
    """Version 4 adds only a function: a read-only open reads a version-3 ledger without
    migrating it; a writable open migrates it, and version 3's one-call append (seven
    arguments, as a client of that version sends it) still works afterwards."""
    schema = postgres_test_schema(tmp_path)
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    with psycopg.connect(postgres_url(), autocommit=True,
                         options=f"-c search_path={schema}") as conn, conn.transaction():
        conn.execute(SQL.MIGRATIONS_TABLE)
        for version, script in SQL.MIGRATIONS[:3]:
            conn.execute(script)
            conn.execute(SQL.RECORD_MIGRATION, (version,))

    def applied() -> list[Any]:
        with psycopg.connect(postgres_url(), options=f"-c search_path={schema}") as conn:
            return conn.execute("SELECT version FROM chatledger_migrations ORDER BY version"
                                ).fetchall()
    url = postgres_schema_url(schema)
    with open_store(url, readonly=True) as reader:
        assert reader.sessions() == [] and reader.verify().ok
    assert applied() == [(1,), (2,), (3,)]
    with open_store(url) as store:
        assert applied() == [(1,), (2,), (3,), (4,)]
        store.append("old", [MessageAppended(message=HumanMessage("one"))])
        (p,), meta = prepare([MessageAppended(message=HumanMessage("two"))], None, None)
        sid = SessionKey(session_id="old").stream_id
        v3_call = "SELECT * FROM chatledger_append_messages(%s, %s, %s, %s, %s, %s, %s)"
        events = _codec.encode([{"i": p.event_id, "t": p.type, "d": p.data,
                                 "p": p.payload_digest, "s": p.salt}]).decode()
        rows = _codec.encode([{"v": 1, "k": 0, "m": _codec.encode(
            HumanMessage("two")).decode()}]).decode()
        with psycopg.connect(postgres_url(), autocommit=True,
                             options=f"-c search_path={schema}") as conn:
            status = conn.execute(v3_call, (f"{schema}:{sid}", sid, 1, True, meta, events,
                                            rows)).fetchone()
            assert status is not None and status[:2] == ("ok", 2)
            new = conn.execute(v3_call, ("x", "session_id=new", -1, True, meta, "[]",
                                         "[]")).fetchone()
            assert new == ("fallback", None, None)  # version 3 leaves new sessions to the plan
        assert store.load_history("old") == (2, [HumanMessage("one"), HumanMessage("two")])
        assert store.verify().ok
