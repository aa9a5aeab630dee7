"""Several OS processes appending to one database: no lost, duplicated or reordered event.

Runs on a SQLite file and on PostgreSQL (an in-memory SQLite cannot be shared by processes).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from chatledger.eventstore import (
    ConcurrencyError,
    HumanMessage,
    MessageAppended,
    SessionKey,
    open_store,
)
from tests.pgsupport import postgres_schema_url, postgres_test_schema

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as StartSignal

WORKERS = 4
APPENDS = 15
SHARED = SessionKey(room="shared")


def own_key(worker: int) -> SessionKey:
    """The session only ``worker`` writes to."""
    return SessionKey(room="own", worker=str(worker))


def worker(url: str, index: int, start: StartSignal) -> None:
    """Append APPENDS turns to the shared session (retrying stale versions) and to its own."""
    store = open_store(url)
    start.wait()
    try:
        for i in range(APPENDS):
            events = [MessageAppended(message=HumanMessage(f"w{index}-{i}-{part}"))
                      for part in ("q", "a")]
            ids = [str(uuid.uuid4()) for _ in events]
            while True:
                # Like a chat turn: read the history, then append what the turn produced.
                version, _ = store.load_history(SHARED)
                try:
                    store.append(SHARED, events, expected_version=version, event_ids=ids)
                    break
                except ConcurrencyError:
                    continue
            store.append(own_key(index), [MessageAppended(message=HumanMessage(f"own-{i}"))],
                         expected_version=i)
    finally:
        store.close()


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL that several processes can open."""
    if request.param == "postgres":
        return postgres_schema_url(postgres_test_schema(tmp_path))
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_processes_appending_with_retries_lose_nothing(shared_url: str) -> None:
    """4 processes retrying on ConcurrencyError leave versions 1..n and every payload once."""
    url = shared_url
    open_store(url, create=True).close()  # create the ledger once, before the race
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=worker, args=(url, i, start)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    with open_store(url) as store:
        shared = store.read(SHARED)
        total = WORKERS * APPENDS * 2
        assert [r.version for r in shared] == list(range(1, total + 1))
        positions = [r.position for r in shared]
        assert positions == sorted(set(positions))
        everything = store.read_all()
        assert len({r.event_id for r in everything}) == len(everything)
        texts = Counter(r.event.message.text for r in shared
                        if isinstance(r.event, MessageAppended))
        assert texts == Counter(f"w{w}-{i}-{part}" for w in range(WORKERS)
                                for i in range(APPENDS) for part in ("q", "a"))
        # Each append's question is immediately followed by its answer: batches never interleave.
        for q, a in zip(shared[::2], shared[1::2], strict=True):
            assert isinstance(q.event, MessageAppended) and isinstance(a.event, MessageAppended)
            assert q.event.message.text[:-1] == a.event.message.text[:-1]
        for w in range(WORKERS):
            own = store.read(own_key(w))
            assert [r.version for r in own] == list(range(1, APPENDS + 1))
            assert [r.event.message.text for r in own if isinstance(r.event, MessageAppended)] \
                == [f"own-{i}" for i in range(APPENDS)]
        all_positions = [r.position for r in everything]
        assert all_positions == sorted(set(all_positions))
        assert len(everything) == total + WORKERS * APPENDS
        assert store.last_position() == all_positions[-1]
        if url.startswith("sqlite"):  # SQLite counts from 1 without gaps; PostgreSQL, see README
            assert all_positions == list(range(1, len(everything) + 1))
        assert store.load_history(SHARED)[0] == total
        assert len(store.load_history(SHARED)[1]) == total
        assert store.verify().ok
