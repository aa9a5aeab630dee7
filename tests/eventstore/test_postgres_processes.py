"""PostgreSQL: several OS processes creating the schema at once, by their first appends.

Appending from several processes is tested for every backend in test_process_concurrency.py.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from chatledger.eventstore import HumanMessage, MessageAppended, SessionKey, open_store
from tests.pgsupport import postgres_schema_url, postgres_test_schema, postgres_url

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as StartSignal

pytestmark = pytest.mark.postgres



def open_and_append(url: str, index: int, start: StartSignal) -> None:
    """Open the store (which creates nothing) and append one event (which creates the schema
    and its ledger if nobody has yet)."""
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


def test_processes_creating_the_schema_at_once_all_succeed(tmp_path: Path) -> None:
    """6 processes first-appending to one new schema at the same moment: one creates it, all
    of them append."""
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
    assert rows == [(1,), (2,), (3,), (4,)]
