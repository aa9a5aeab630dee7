"""Outcomes that never lie, under injected faults: a committed append is a success whatever
happens after its COMMIT; a lost COMMIT is OutcomeUnknownError and a retry with its event ids
stores the events once; a full disk or read-only medium is named, writes nothing, and the store
works again once the cause is gone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from chatledger.eventstore import (
    HumanMessage,
    MessageAppended,
    OutcomeUnknownError,
    StoreError,
    open_store,
)
from chatledger.eventstore.postgres import _appending, _plans, _tail
from chatledger.eventstore.postgres._plans import Query

HI = [MessageAppended(message=HumanMessage("hi"))]
KILL_MYSELF = "SELECT pg_terminate_backend(pg_backend_pid())"


def kill_after_commit(schema: str) -> Query:
    """In place of the NOTIFY: the server ends this very connection, after the COMMIT."""
    return Query(KILL_MYSELF, ())


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["one-call", "plan"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_connection_cut_after_commit_still_returns_success(
        pg: Any, monkeypatch: pytest.MonkeyPatch, path: str, mode: str) -> None:
    """The connection terminated at the post-commit step (the notification) does not fail the
    append: it returns its result, logs the lost notification, and the events are stored once."""
    if path == "one-call":
        pg.append("s", HI)  # an existing session without given ids takes the one-call path
    ids = None if path == "one-call" else [str(uuid.uuid4())]  # given ids take the plan
    before = pg.version("s")
    pg._tails = True  # as after an append that found a tail: the notification follows COMMIT
    monkeypatch.setattr(_plans, "notice", kill_after_commit)
    with capture_logs() as logs:
        result = pg.append("s", HI, event_ids=ids) if mode == "sync" else \
            asyncio.run(pg.aappend("s", HI, event_ids=ids))
    assert result.version == before + 1 and not result.duplicate
    assert len(result.positions) == 1
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["notify_failed"]
    monkeypatch.undo()
    assert [r.version for r in pg.read("s")] == list(range(1, before + 2))
    assert pg.read("s")[-1].position == result.positions[0]
    assert pg.append("s", HI).version == before + 2  # the pool replaced the dead connection


def refuse_after_commit(schema: str) -> Query:
    """In place of the NOTIFY: a statement the server refuses, after the COMMIT."""
    return Query("SELECT 1 / 0", ())


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["one-call", "plan"])
def test_a_notification_refused_after_commit_still_returns_success(
        pg: Any, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """An error the server answers after the COMMIT (as a full notification queue would be)
    does not fail the append, and the connection stays usable."""
    pg.append("s", HI)
    ids = None if path == "one-call" else [str(uuid.uuid4())]
    pg._tails = True  # as after an append that found a tail: the notification follows COMMIT
    monkeypatch.setattr(_plans, "notice", refuse_after_commit)
    with capture_logs() as logs:
        result = pg.append("s", HI, event_ids=ids)
    assert result.version == 2 and len(result.positions) == 1 and not result.duplicate
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["notify_failed"]
    monkeypatch.undo()
    assert [r.position for r in pg.read("s")][-1] == result.positions[0]
    assert pg.append("s", HI).version == 3


@pytest.mark.postgres
def test_a_connection_cut_during_the_commit_is_outcome_unknown_and_a_retry_stores_once(
        pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection lost while the one-call append (its own COMMIT) runs raises
    OutcomeUnknownError carrying the event ids; retrying with them stores the events once."""
    pg.append("s", HI)
    real = _appending.fast_append

    def dying(*args: Any, **kwargs: Any) -> Query | None:
        query = real(*args, **kwargs)
        assert query is not None
        return Query(KILL_MYSELF, None)

    monkeypatch.setattr(_appending, "fast_append", dying)
    with pytest.raises(OutcomeUnknownError, match="retry with the same event_ids") as info:
        pg.append("s", HI)
    monkeypatch.undo()
    assert isinstance(info.value, StoreError) and len(info.value.event_ids) == 1
    for _ in range(2):
        retry = pg.append("s", HI, event_ids=info.value.event_ids)
        assert retry.version == 2
    assert [r.event_id for r in pg.read("s")][1:] == info.value.event_ids


@pytest.mark.postgres
def test_a_lost_commit_whose_lookup_fails_too_is_outcome_unknown_naming_both(
        pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the connection is lost and looking the events up fails as well, the error says
    both, and the outcome stays unknown (never success, never a plain failure)."""
    pg.append("s", HI)
    real_fast, real_fetch = _appending.fast_append, pg._fetch

    def dying(*args: Any, **kwargs: Any) -> Query | None:
        assert real_fast(*args, **kwargs) is not None
        return Query(KILL_MYSELF, None)

    def failing_lookup(action: str, sql: str, params: Any = None) -> Any:
        if "event_id = ANY" in sql:
            raise StoreError("the server is gone")
        return real_fetch(action, sql, params)

    monkeypatch.setattr(_appending, "fast_append", dying)
    monkeypatch.setattr(pg, "_fetch", failing_lookup)
    with pytest.raises(OutcomeUnknownError, match="looking its events up failed too: "
                                                  "the server is gone") as info:
        pg.append("s", HI)
    assert len(info.value.event_ids) == 1


@pytest.mark.postgres
def test_a_server_error_at_commit_is_a_plain_store_error(pg: Any) -> None:
    """An error the server answers (here a clashing event id) is not OutcomeUnknownError:
    nothing was written."""
    eid = str(uuid.uuid4())
    pg.append("a", HI, event_ids=[eid])
    with pytest.raises(Exception) as info:
        pg.append("b", HI, event_ids=[eid])
    assert not isinstance(info.value, OutcomeUnknownError)
    assert pg.version("b") == 0


# -- a real full disk and a real read-only medium (tmpfs; root only) ----------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at a fresh folder, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root; run the suite as root (CI "
                    "does) to test a full disk")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no full-disk test")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 1):
            try:
                while f.write(b"\0" * chunk):
                    pass
            except OSError:
                pass
    return filler


def test_a_full_disk_is_named_writes_nothing_and_the_store_recovers(small_disk: Path) -> None:
    """On a full disk an append raises StoreError saying so and writes nothing; reopening works
    (no "cannot rollback" masking the cause), and once space is freed appends work again."""
    url = f"sqlite:///{small_disk / 'log.db'}"
    store = open_store(url)
    store.append("s", HI)
    filler = fill(small_disk)
    big = [MessageAppended(message=HumanMessage("x" * 200_000))]
    with pytest.raises(StoreError, match=r"disk is full|I/O error") as info:
        for _ in range(50):
            store.append("s", big)
    assert "cannot rollback" not in str(info.value)
    full_version = store.version("s")
    store.close()
    again = open_store(url)
    assert again.version("s") == full_version
    assert again.verify().ok
    filler.unlink()
    assert again.append("s", HI).version == full_version + 1
    assert again.verify().ok
    again.close()


def test_read_only_media_are_named_and_reads_still_work(small_disk: Path) -> None:
    """On a file system remounted read-only, reads and verify work and an append raises
    StoreError naming the read-only medium."""
    url = f"sqlite:///{small_disk / 'log.db'}"
    with open_store(url) as store:
        store.append("s", HI)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with open_store(url) as store:
        assert store.verify().ok and store.version("s") == 1
        with pytest.raises(StoreError, match="read-only"):
            store.append("s", HI)
        assert store.version("s") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_connection_cut_at_the_plans_commit_is_outcome_unknown(
        pg: Any, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The two-step append losing its connection at COMMIT raises OutcomeUnknownError; a retry
    with the given event ids then stores the events exactly once."""
    from chatledger.eventstore.postgres import _sql

    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    events = [MessageAppended(message=HumanMessage("a")), MessageAppended(message=HumanMessage("b"))]
    monkeypatch.setattr(_sql, "COMMIT", KILL_MYSELF)
    with pytest.raises(OutcomeUnknownError) as info:
        if mode == "sync":
            pg.append("new", events, event_ids=ids)
        else:
            asyncio.run(pg.aappend("new", events, event_ids=ids))
    monkeypatch.undo()
    assert info.value.event_ids == ids
    first = pg.append("new", events, event_ids=info.value.event_ids)
    again = pg.append("new", events, event_ids=info.value.event_ids)
    assert (first.version, again.version, again.duplicate) == (2, 2, True)
    assert [r.event_id for r in pg.read("new")] == ids


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_append_notifies_listeners_with_its_schema(pg: Any, mode: str) -> None:
    """The one-call append and the plan (given ids, a clear) each notify a registered
    listener with the schema as payload, on or after their COMMIT: a listener on another
    connection, registered as a tail registers, and reading the stream each time it is woken,
    sees the append's events."""
    import threading

    import psycopg

    from chatledger.eventstore import HistoryCleared
    from tests.pgsupport import postgres_url

    def listen(target: int, listening: threading.Event, seen: list[int]) -> None:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            for statement, params in _tail._registration(pg.schema):
                conn.execute(statement, params)
            listening.set()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                # (other stores on the server notify on the same channel: only ours count;
                # the connection is free for the read only outside the notifies() loop)
                got = [n.payload for n in conn.notifies(timeout=1, stop_after=1)]
                if pg.schema not in got:
                    continue
                row = conn.execute(f'SELECT coalesce(max(version), 0) FROM "{pg.schema}".events'
                                   ).fetchone()
                assert row is not None
                seen.append(int(row[0]))
                if seen[-1] >= target:
                    return

    appends = [
        ("s", HI, None),  # a new session: the one call, notifying inside its transaction
        ("s", HI, None),  # the one call, notifying after its COMMIT (a tail listened)
        ("s", HI, [str(uuid.uuid4())]),  # given ids: the plan
        ("s", [HistoryCleared()], None),  # a clear: the plan
    ]
    for key, events, ids in appends:
        target = pg.version(key) + len(events)
        listening, seen = threading.Event(), []
        listener = threading.Thread(target=listen, args=(target, listening, seen), daemon=True)
        listener.start()
        assert listening.wait(5)
        done = pg.append(key, events, event_ids=ids) if mode == "sync" else \
            asyncio.run(pg.aappend(key, events, event_ids=ids))
        listener.join(10)
        assert done.version == target
        # woken after the COMMIT: the last wake-up saw the events (a notification sent
        # only before it would leave the listener short, then waiting in vain)
        assert seen and seen[-1] == target
