"""Tailing the PostgreSQL log: LISTEN/NOTIFY instead of polling.

Appends notify (``NOTIFY chatledger_events``, payload: the schema's name) only while a tail
listens to their schema; the common case of no tail costs no notification. A tail uses its own
connection: it LISTENs, registers (``SQL.LISTENING``: a shared advisory lock held as long as
the connection), waits for the appends in flight that saw no tail to commit
(``SQL.AWAIT_APPENDS``), then reads every event after its position, and only then waits.
Every append either finds the registration and notifies, or commits before that first read
(see ``SQL.LISTENERS_CLASS``); any commit the read missed has therefore queued its
notification, and the wait returns at once: no event is ever left unread.

Reads stop at the horizon (see PostgresStore): committed events can sit above it while an
older transaction is still running. Such a transaction may not be chatledger's and so may end
without a notification; while events are held back, the tail therefore also re-reads on a short
timer (10 ms, doubling up to 0.5 s) until they come through.

Before the ledger exists, a tail sees an empty log: it looks for the ledger again each time it
wakes, and the append that writes the first event also sends the first notification.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg

from chatledger.eventstore._errors import InvalidInputError, StoreError
from chatledger.eventstore._events import Record
from chatledger.eventstore._rows import records_of
from chatledger.eventstore._store import check_version
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._schema import aread_state, describe, read_state, usable
from chatledger.eventstore.postgres._url import PostgresTarget, scrub

__all__ = ["asubscribe", "check_tail", "subscribe"]

PAGE = 1000


def check_tail(after_position: int, timeout: float | None) -> None:
    """Validate a tail's arguments.

    Raises:
        InvalidInputError: A negative position or timeout.
    """
    check_version(after_position, "after_position", optional=False)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise InvalidInputError(f"timeout must be None or a non-negative number, got {timeout!r}")


def _ours(payloads: list[str], schema: str) -> bool:
    # The payload is the schema (older releases sent "<schema>:<position>").
    prefix = f"{schema}:"
    return any(p == schema or p.startswith(prefix) for p in payloads)


def subscribe(target: PostgresTarget, schema: str, after_position: int = 0, *,
              timeout: float | None = None, ready: bool = True) -> Iterator[Record]:
    """Every event after ``after_position`` in position order, then each new one as it commits.

    Args:
        target: Where the log is.
        schema: The log's schema; notifications of other schemas are ignored.
        after_position: Start after this position (0 = from the beginning).
        timeout: Stop after this many seconds without a new event; None waits forever.
        ready: The ledger is known to exist; if not, the tail looks for it while it waits.

    Raises:
        InvalidInputError: A negative position or timeout.
        NotFoundError: The schema named by ``?schema=`` does not exist.
        StoreError: The connection failed or was lost.
    """
    check_tail(after_position, timeout)
    where = describe(schema, target)
    try:
        conn = psycopg.connect(target.conninfo, autocommit=True)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to PostgreSQL at {target.redacted}: "
                         f"{scrub(target, e)}") from e
    position = after_position
    pacer = _Pacer(timeout)
    try:
        with conn:
            for statement, params in _registration(schema):
                conn.execute(statement, params)
            while True:
                if not ready:
                    ready = usable(read_state(conn, schema, where), where)
                while ready:
                    rows = conn.execute(SQL.READ_ALL, (position, PAGE)).fetchall()
                    for row in rows:
                        (record,) = records_of([row])
                        position = record.position
                        pacer.saw_event()
                        yield record
                    if len(rows) < PAGE:
                        break
                held = False
                if ready:
                    held = bool(conn.execute(SQL.HELD_BACK).fetchone()[0])  # type: ignore[index]
                wait = pacer.next_wait(held)
                if wait is not None and wait <= 0:
                    return
                _wait(conn, schema, wait)
    except psycopg.Error as e:
        raise StoreError(f"tailing {target.redacted} failed after position {position}: "
                         f"{scrub(target, e)}") from e


def _registration(schema: str) -> list[tuple[str, tuple[int, ...]]]:
    """A tail's first statements, in order: LISTEN, register, wait for appends in flight."""
    key = SQL.schema_key(schema)
    return [(SQL.LISTEN, ()), (SQL.LISTENING, (SQL.LISTENERS_CLASS, key)),
            (SQL.AWAIT_APPENDS, (SQL.APPENDS_CLASS, key)),
            (SQL.RELEASE_APPENDS, (SQL.APPENDS_CLASS, key))]


class _Pacer:
    """How long a tail waits for a notification before it reads again, or gives up."""

    FIRST_POLL = 0.01
    MAX_POLL = 0.5

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.idle_since = time.monotonic()
        self.poll = self.FIRST_POLL

    def saw_event(self) -> None:
        self.idle_since = time.monotonic()
        self.poll = self.FIRST_POLL

    def next_wait(self, held_back: bool) -> float | None:
        """Seconds to wait (None: until notified); 0 or less means the timeout has passed."""
        wait: float | None = None
        if held_back:
            wait = self.poll
            self.poll = min(self.poll * 2, self.MAX_POLL)
        else:
            self.poll = self.FIRST_POLL
        if self.timeout is not None:
            remaining = self.timeout - (time.monotonic() - self.idle_since)
            if remaining <= 0:
                return 0.0
            wait = remaining if wait is None else min(wait, remaining)
        return wait


def _wait(conn: psycopg.Connection[Any], schema: str, timeout: float | None) -> None:
    """Block until this schema's next commit or ``timeout`` seconds pass."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        got = [n.payload for n in conn.notifies(timeout=remaining, stop_after=1)]
        if not got:
            return
        # Drain what else is queued: one read after this wake-up covers all of it.
        got += [n.payload for n in conn.notifies(timeout=0)]
        if _ours(got, schema):
            return


async def asubscribe(target: PostgresTarget, schema: str, after_position: int = 0, *,
                     timeout: float | None = None, ready: bool = True) -> AsyncIterator[Record]:
    """``subscribe`` as an async generator on an async connection.

    Raises:
        InvalidInputError: A negative position or timeout.
        NotFoundError: The schema named by ``?schema=`` does not exist.
        StoreError: The connection failed or was lost.
    """
    check_tail(after_position, timeout)
    where = describe(schema, target)
    try:
        conn = await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to PostgreSQL at {target.redacted}: "
                         f"{scrub(target, e)}") from e
    position = after_position
    pacer = _Pacer(timeout)
    try:
        async with conn:
            for statement, params in _registration(schema):
                await conn.execute(statement, params)
            while True:
                if not ready:
                    ready = usable(await aread_state(conn, schema, where), where)
                while ready:
                    cur = await conn.execute(SQL.READ_ALL, (position, PAGE))
                    rows = await cur.fetchall()
                    for row in rows:
                        (record,) = records_of([row])
                        position = record.position
                        pacer.saw_event()
                        yield record
                    if len(rows) < PAGE:
                        break
                held = False
                if ready:
                    cur = await conn.execute(SQL.HELD_BACK)
                    held = bool((await cur.fetchone())[0])  # type: ignore[index]
                wait = pacer.next_wait(held)
                if wait is not None and wait <= 0:
                    return
                await _await(conn, schema, wait)
    except psycopg.Error as e:
        raise StoreError(f"tailing {target.redacted} failed after position {position}: "
                         f"{scrub(target, e)}") from e


async def _await(conn: psycopg.AsyncConnection[Any], schema: str,
                 timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        got = [n.payload async for n in conn.notifies(timeout=remaining, stop_after=1)]
        if not got:
            return
        got += [n.payload async for n in conn.notifies(timeout=0)]
        if _ours(got, schema):
            return
