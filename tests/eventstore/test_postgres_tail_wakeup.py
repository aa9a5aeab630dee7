"""PostgreSQL: appends notify only while a tail listens, and a tail never misses a commit.

A tail registers after its LISTEN (a shared advisory lock) and waits for the appends already
past their check to commit before its first read. An append that finds no tail sends no
notification; one that finds a tail notifies, and its store sends the notification after the
COMMIT from then on, until an append finds no tail again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from chatledger.eventstore import HumanMessage, MessageAppended, Record, SessionKey, open_store
from chatledger.eventstore._append import prepare
from chatledger.eventstore.postgres import PostgresStore
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._plans import fast_append
from tests.pgsupport import postgres_url

pytestmark = pytest.mark.postgres

HI = [MessageAppended(message=HumanMessage("hi"))]


class Tail:
    """``store.subscribe()`` in a thread, recording each event with the time it arrived."""

    def __init__(self, store: Any, after: int, timeout: float) -> None:
        self.got: list[tuple[float, Record]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(store, after, timeout),
                                       daemon=True)
        self.thread.start()

    def _run(self, store: Any, after: int, timeout: float) -> None:
        try:
            for record in store.subscribe(after_position=after, timeout=timeout):
                self.got.append((time.monotonic(), record))
        except BaseException as e:
            self.error = e

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive() and self.error is None


def _registered(schema: str) -> int:
    """How many connections hold the schema's tail registration now."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                           "classid = %s AND objid::bigint = (%s::bigint & 4294967295) "
                           "AND granted", (SQL.LISTENERS_CLASS, SQL.schema_key(schema))
                           ).fetchone()
    assert row is not None
    return int(row[0])


def _wait_until(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_without_a_tail_an_append_sends_no_notification(pg: PostgresStore) -> None:
    """No tail: the one-call string ends at COMMIT, and a plain LISTEN (not registered) hears
    nothing from the one-call append."""
    pg.append("s", HI)
    assert not pg._tails
    key = SessionKey.coerce("s")
    prepared, meta = prepare(HI, None, None)
    query = fast_append(key, prepared, meta, None, project=True, schema=pg.schema, tails=False)
    assert query is not None and query.sql.rstrip().endswith("COMMIT")
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(SQL.LISTEN)
        pg.append("s", HI)
        heard = [n.payload for n in conn.notifies(timeout=0.5)]
    assert pg.schema not in heard


def test_a_tail_is_woken_by_an_append_whose_store_had_seen_no_tail(pg: PostgresStore) -> None:
    """A store whose last append found no tail appends while a tail waits: the function finds
    the tail and notifies inside the transaction, so the tail wakes at once; from then on the
    store notifies after the COMMIT; once the tail has gone, it stops."""
    pg.append("s", HI)
    assert not pg._tails
    tail = Tail(pg, pg.last_position(), timeout=5)
    _wait_until(lambda: _registered(pg.schema) == 1)
    time.sleep(0.2)  # the tail has read the log and waits
    sent = time.monotonic()
    result = pg.append("s", HI)
    _wait_until(lambda: len(tail.got) == 1)
    assert tail.got[0][1].position == result.positions[0]
    assert tail.got[0][0] - sent < 2.0  # woken by the notification, not by its 5 s timeout
    assert pg._tails  # the next append notifies after its COMMIT
    second = pg.append("s", HI)
    _wait_until(lambda: len(tail.got) == 2)
    assert tail.got[1][1].position == second.positions[0]
    tail.join()  # ends 5 s after the last event
    _wait_until(lambda: _registered(pg.schema) == 0)
    pg.append("s", HI)
    assert not pg._tails


def test_a_tail_registering_while_an_append_is_in_flight_reads_it_after_its_commit(
        pg: PostgresStore) -> None:
    """The race the registration closes: an append past its check for a tail (it found none,
    so it will not notify) but not yet committed. The tail's registration waits for that
    commit, so the tail's first read sees the events."""
    pg.append("s", HI)
    key = SessionKey.coerce("s")
    prepared, meta = prepare(HI, None, None)
    query = fast_append(key, prepared, meta, None, project=True, schema=pg.schema, tails=False)
    assert query is not None
    call = query.sql.split(";")[1]  # the function call alone, inside our own transaction
    with psycopg.connect(postgres_url(), autocommit=True,
                         options=f"-c search_path={pg.schema}") as writer:
        writer.execute("BEGIN")
        row = psycopg.ClientCursor(writer).execute(call, query.params).fetchone()
        assert row is not None and row[0] == "ok" and row[3] is False  # no tail: no NOTIFY
        tail = Tail(pg, 0, timeout=3)
        _wait_until(lambda: _registered(pg.schema) == 1)
        time.sleep(0.3)
        assert tail.got == []  # held at its registration until the append commits
        writer.execute("COMMIT")
    tail.join()
    assert [r.version for _, r in tail.got] == [1, 2]
    assert [r.event_id for _, r in tail.got][1] == prepared[0].event_id


def test_tails_and_writers_together_lose_no_event(url: str) -> None:
    """Four writers (own stores, each starting with no tail in view) and tails that come and
    go: every tail that started before the last append ends having seen every event after
    its start position, in order."""
    writers = [open_store(url) for _ in range(4)]
    try:
        writers[0].append("w0", HI)
        stop = threading.Event()

        def write(store: Any, n: int) -> None:
            while not stop.is_set():
                store.append(f"w{n}", HI)
                time.sleep(0.002)

        threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(writers)]
        for t in threads:
            t.start()
        tails = []
        for _ in range(3):
            time.sleep(0.2)
            tails.append(Tail(writers[0], 0, timeout=1.5))
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        everything = [r.position for r in writers[0].read_all()]
        for tail in tails:
            tail.join()
            assert [r.position for _, r in tail.got] == everything
        assert writers[0].verify().ok
        assert len(set(everything)) == len(everything) > 4
    finally:
        for s in writers:
            s.close()
