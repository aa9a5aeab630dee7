"""How the PostgreSQL store reaches its ledger: connections from its pools with driver errors
translated, and whether the ledger exists yet (the first append creates it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg

from chatledger.eventstore._errors import DuplicateEventError, StoreError
from chatledger.eventstore.postgres._plans import Plan, run_sync
from chatledger.eventstore.postgres._pools import AsyncPools, Pool, PoolTimeout
from chatledger.eventstore.postgres._schema import aread_state, migrate, read_state, usable
from chatledger.eventstore.postgres._url import PostgresTarget, scrub

__all__ = ["Connections", "POOL_TIMEOUT_S", "open_pools"]

POOL_TIMEOUT_S = 30.0
"""How long a call waits for one of the pool's connections while all are in use. A call that
has to connect waits at most the URL's ``connect_timeout`` (default 10 s) for that."""


def open_pools(target: PostgresTarget) -> tuple[Pool, AsyncPools]:
    """A store's sync pool and its per-event-loop async pools; they connect on first use."""
    return (Pool(target.conninfo, max_size=target.pool_size, timeout=POOL_TIMEOUT_S),
            AsyncPools(target.conninfo, max_size=target.pool_size, timeout=POOL_TIMEOUT_S))


class Connections:
    """The store's connections and its ledger's presence; ``PostgresStore`` sets the
    attributes when it opens."""

    readonly: bool
    schema: str
    _target: PostgresTarget
    _where: str  # the schema, as messages name it
    _closed: bool
    _ready: bool  # the ledger exists (once seen, for good)
    _pool: Pool
    _apools: AsyncPools

    # -- plumbing --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self._target.redacted!r} is closed")

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self._target.redacted} is opened read-only; nothing was written")

    # -- a ledger not created yet ------------------------------------------------------------
    # Once seen, the ledger is remembered (chatledger never removes one): reads and writes
    # then pay nothing for it. Until then each read looks again, one query.
    def _empty(self) -> bool:
        """True while the ledger does not exist yet: reads then answer as an empty ledger.

        Raises:
            NotFoundError: The schema named by ``?schema=`` does not exist.
            StoreError: The ledger that appeared is not one this store can read.
        """
        if self._ready:
            return False
        with self._connection("read") as conn:
            applied = read_state(conn, self.schema, self._where)
        self._ready = usable(applied, self._where)
        return not self._ready

    async def _aempty(self) -> bool:
        """``_empty`` on this event loop's async pool."""
        if self._ready:
            return False
        async with self._aconnection("read") as conn:
            applied = await aread_state(conn, self.schema, self._where)
        self._ready = usable(applied, self._where)
        return not self._ready

    def _ensure_ledger(self) -> None:
        """Create the ledger (and its schema) before the store's first write, if it does not
        exist yet: under the schema's advisory lock, so that of concurrent first writers one
        creates it and the others find it made."""
        if self._ready:
            return
        self._check_writable()
        with self._connection("create the ledger") as conn:
            migrate(conn, self._target)
        self._ready = True

    async def _aensure_ledger(self) -> None:
        """``_ensure_ledger`` off the event loop (it runs once per store)."""
        if not self._ready:
            await asyncio.to_thread(self._ensure_ledger)

    # -- connections -------------------------------------------------------------------------
    def _error(self, e: Exception, action: str) -> Exception:
        """The chatledger error for a driver error raised while doing ``action``."""
        if isinstance(e, psycopg.errors.UniqueViolation) and \
                e.diag.constraint_name == "events_event_id":
            return DuplicateEventError(f"an event id is already stored: {scrub(self._target, e)}")
        if isinstance(e, PoolTimeout):
            return StoreError(f"{action} on {self._target.redacted}: no connection free: "
                              f"{scrub(self._target, e)}")
        return StoreError(f"{action} on {self._target.redacted} failed: {scrub(self._target, e)}")

    @contextmanager
    def _connection(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        self._check_open()
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise self._error(e, action) from e

    @asynccontextmanager
    async def _aconnection(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        self._check_open()
        pool = self._apools.get()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise self._error(e, action) from e

    def _fetch(self, action: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._connection(action) as conn:
            return conn.execute(sql, params).fetchall()

    async def _afetch(self, action: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._aconnection(action) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    def _run(self, action: str, plan: Plan[Any]) -> Any:
        with self._connection(action) as conn:
            return run_sync(conn, plan, self.schema)
