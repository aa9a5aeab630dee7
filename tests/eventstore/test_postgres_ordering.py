"""PostgreSQL: concurrent writers never let a tailing reader skip or repeat an event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import HumanMessage, MessageAppended, Record, open_store
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import postgres_empty_schema_url, postgres_test_schema

pytestmark = pytest.mark.postgres

WRITERS = 8
APPENDS = 500
ROUNDS = 3
SESSIONS = 5  # fewer sessions than writers, so writers also meet on one stream's head


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresStore]:
    """A PostgreSQL store in a fresh schema, with a pool big enough for every thread."""
    url = postgres_empty_schema_url(postgres_test_schema(tmp_path)) + "&pool_size=12"
    store = open_store(url, durability="fast")
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


class Tail:
    """What one reader saw: positions in the order seen, and any error it hit."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.error: BaseException | None = None


def _run(target: Callable[[], None], tail: Tail) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except BaseException as e:  # reported by the test thread
            tail.error = e
    thread = threading.Thread(target=guarded)
    thread.start()
    return thread


def _write(store: PostgresStore, writer: int, round_: int, errors: list[BaseException]) -> None:
    try:
        for i in range(APPENDS):
            message = HumanMessage(f"r{round_}-w{writer}-{i}")
            store.append(f"s{(writer + i) % SESSIONS}", [MessageAppended(message=message)])
    except BaseException as e:
        errors.append(e)


def test_tailing_readers_see_every_commit_once_in_order(pg: PostgresStore) -> None:
    """8 writers x 500 appends, 3 rounds: a polling and a LISTEN tail each see every event once, in order."""
    total = WRITERS * APPENDS
    for round_ in range(ROUNDS):
        start = pg.last_position()
        polled, listened = Tail(), Tail()

        def poll(tail: Tail = polled, start: int = start) -> None:
            position = start
            while len(tail.records) < total:
                batch = pg.read_all(after_position=position, limit=300)
                tail.records += batch
                if batch:
                    position = batch[-1].position
                else:
                    time.sleep(0.001)  # yield the GIL to the writers between empty polls

        def listen(tail: Tail = listened, start: int = start) -> None:
            for record in pg.subscribe(after_position=start, timeout=30):
                tail.records.append(record)
                if len(tail.records) == total:
                    break

        readers = [_run(poll, polled), _run(listen, listened)]
        errors: list[BaseException] = []
        writers = [threading.Thread(target=_write, args=(pg, w, round_, errors))
                   for w in range(WRITERS)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        for t in readers:
            t.join(timeout=60)
        assert errors == []
        stored = pg.read_all(after_position=start)
        assert len(stored) == total
        expected = [r.position for r in stored]
        assert expected == sorted(set(expected))
        for tail in (polled, listened):
            assert tail.error is None
            assert [r.position for r in tail.records] == expected  # all, once, in order
            assert [r.event_id for r in tail.records] == [r.event_id for r in stored]
    assert pg.verify().ok
    assert sum(pg.version(f"s{i}") for i in range(SESSIONS)) == ROUNDS * WRITERS * APPENDS
