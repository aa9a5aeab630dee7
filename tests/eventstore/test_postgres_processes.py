"""PostgreSQL: several OS processes on one database, appending and creating the schema at once."""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from pgsupport import postgres_schema_url, postgres_test_schema, postgres_url

from eventstore import ConcurrencyError, HumanMessage, MessageAppended, SessionKey, open_store

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as StartSignal

pytestmark = pytest.mark.postgres

WORKERS = 4
TURNS = 25
SHARED = SessionKey(room="shared")


def append_turns(url: str, index: int, start: StartSignal) -> None:
    """Append TURNS two-message turns to the shared session, retrying stale versions."""
    store = open_store(url)
    start.wait()
    try:
        for i in range(TURNS):
            events = [MessageAppended(message=HumanMessage(f"w{index}-{i}-{part}"))
                      for part in ("q", "a")]
            ids = [str(uuid.uuid4()) for _ in events]
            while True:
                version, _ = store.load_history(SHARED)
                try:
                    store.append(SHARED, events, expected_version=version, event_ids=ids)
                    break
                except ConcurrencyError:
                    continue
    finally:
        store.close()


def open_and_append(url: str, index: int, start: StartSignal) -> None:
    """Open the store (creating the schema if nobody has yet) and append one event."""
    start.wait()
    with open_store(url) as store:
        store.append(SessionKey(worker=str(index)), [MessageAppended(message=HumanMessage("hi"))],
                     expected_version=0)


def _race(target: object, url: str, workers: int) -> list[int | None]:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(url, i, start)) for i in range(workers)]  # type: ignore[arg-type]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    return [p.exitcode for p in procs]


def test_processes_with_version_retries_leave_versions_without_gaps(tmp_path: Path) -> None:
    """4 processes retrying on ConcurrencyError leave versions 1..n, every payload once, verify ok."""
    url = postgres_schema_url(postgres_test_schema(tmp_path))
    open_store(url).close()
    assert _race(append_turns, url, WORKERS) == [0] * WORKERS

    with open_store(url) as store:
        shared = store.read(SHARED)
        total = WORKERS * TURNS * 2
        assert [r.version for r in shared] == list(range(1, total + 1))
        assert [r.position for r in store.read_all()] == list(range(1, total + 1))
        texts = Counter(r.event.message.text for r in shared
                        if isinstance(r.event, MessageAppended))
        assert texts == Counter(f"w{w}-{i}-{part}" for w in range(WORKERS)
                                for i in range(TURNS) for part in ("q", "a"))
        assert store.load_history(SHARED)[0] == total
        assert store.verify().ok


def test_processes_creating_the_schema_at_once_all_succeed(tmp_path: Path) -> None:
    """6 processes opening one new schema at the same moment: one creates it, all of them append."""
    workers = 6
    url = postgres_schema_url(postgres_test_schema(tmp_path))
    assert _race(open_and_append, url, workers) == [0] * workers

    with open_store(url) as store:
        assert sorted(r.stream_id for r in store.read_all()) == sorted(
            SessionKey(worker=str(i)).stream_id for i in range(workers))
        assert store.verify().ok
        schema = store.stats()["schema"]
    with psycopg.connect(postgres_url()) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".chatledger_migrations').fetchall()
    assert rows == [(1,)]
