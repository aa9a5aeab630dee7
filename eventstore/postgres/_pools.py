"""The store's connections: one pool for the process's threads, one per event loop, and no
thread or task of their own.

A connection is made by the caller that needs it, in its own thread or task, within the
URL's ``connect_timeout``. So a server that cannot be reached fails that call at once with
libpq's reason, and a caller waits (up to the pool's timeout) only for a connection another
caller is using. psycopg_pool's pools (not used) connect in background workers instead: the sync
``ConnectionPool`` leaves a caller waiting out its whole timeout while the workers retry a
server that is down (printing each failure), and joins its worker threads when it is
collected, which fails when that happens on one of them; the ``AsyncConnectionPool``, when
``asyncio.run`` cancels a worker in the middle of a connect, swallows the ``CancelledError``
and schedules a retry, so the loop never finishes shutting down and ``asyncio.run`` hangs.

An async connection belongs to the loop it was made on, while a store outlives loops: a web
server runs one loop for ever, but scripts and tests call ``asyncio.run`` again and again. So
each loop gets its own small pool, made on first use.

Idle connections are plain objects that any thread can close, so a store that is dropped
without ``close()`` releases them from a finaliser (``close_pools``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from time import monotonic
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

__all__ = ["AsyncPools", "LoopPool", "Pool", "PoolTimeout", "close_pools"]

class PoolTimeout(psycopg.OperationalError):
    """Every connection of a pool stayed in use for the pool's whole timeout."""


MAX_IDLE_S = 600.0
"""An idle connection older than this is closed rather than reused: a firewall or the
server's ``idle_session_timeout`` may have cut it meanwhile."""

C = TypeVar("C", psycopg.Connection[Any], psycopg.AsyncConnection[Any])


class _Idle(Generic[C]):
    """A pool's idle connections, the most recently used last; closable from any thread."""

    def __init__(self) -> None:
        self._conns: list[tuple[C, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> C | None:
        """The most recently used idle connection, if any; stale ones are closed."""
        now = monotonic()
        stale: list[C] = []
        conn: C | None = None
        with self._lock:
            while self._conns and now - self._conns[0][1] > MAX_IDLE_S:
                stale.append(self._conns.pop(0)[0])
            if self._conns:
                conn = self._conns.pop()[0]
        for old in stale:
            old.pgconn.finish()
        return None if conn is None or conn.closed else conn

    def give_back(self, conn: C) -> None:
        """Keep ``conn`` for the next caller, or close it.

        A connection left mid-query or mid-transaction (a cancelled task, a lost server) is
        not worth rescuing: it is closed, and the next caller connects afresh.
        """
        reusable = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        with self._lock:
            if reusable and not self._closed:
                self._conns.append((conn, monotonic()))
                return
        conn.pgconn.finish()

    def close(self) -> None:
        """Close the idle connections, and every connection given back from now on."""
        with self._lock:
            self._closed = True
            idle, self._conns = self._conns, []
        for conn, _ in idle:
            conn.pgconn.finish()


class Pool:
    """At most ``max_size`` connections shared by a process's threads; idle ones are reused.

    Args:
        conninfo: The libpq connection string.
        max_size: The most connections in use at once; further callers wait.
        timeout: Seconds a caller waits for a connection in use to be given back.
    """

    def __init__(self, conninfo: str, *, max_size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(max_size)
        self._idle: _Idle[psycopg.Connection[Any]] = _Idle()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection for the duration of the block.

        Raises:
            PoolTimeout: All ``max_size`` connections stayed in use for the whole timeout.
            psycopg.OperationalError: A new connection could not be made.
        """
        if not self._slots.acquire(timeout=self._timeout):
            raise PoolTimeout(_busy(self._max_size, self._timeout))
        try:
            conn = self._idle.take()
            if conn is None:
                conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
            try:
                yield conn
            finally:
                self._idle.give_back(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; connections in use close when they come back."""
        self._idle.close()


class LoopPool:
    """At most ``max_size`` async connections of one event loop; idle ones are reused.

    Args:
        conninfo: The libpq connection string.
        max_size: The most connections in use at once; further callers wait.
        timeout: Seconds a caller waits for its turn before ``PoolTimeout``.
    """

    def __init__(self, conninfo: str, *, max_size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_size)
        self._idle: _Idle[psycopg.AsyncConnection[Any]] = _Idle()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """An autocommit connection for the duration of the block.

        Raises:
            PoolTimeout: All ``max_size`` connections stayed in use for the whole timeout.
            psycopg.OperationalError: A new connection could not be made.
        """
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(_busy(self._max_size, self._timeout)) from None
        try:
            conn = self._idle.take()
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                yield conn
            finally:
                self._idle.give_back(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; connections in use close when they come back."""
        self._idle.close()


class AsyncPools:
    """The per-loop pools of one store.

    Args:
        conninfo: The libpq connection string.
        max_size: The most connections one loop may use at once.
        timeout: Seconds a caller waits for a connection.
    """

    def __init__(self, conninfo: str, *, max_size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pools: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], LoopPool]] = {}
        self._closed = False

    def get(self) -> LoopPool:
        """The running loop's pool, made on first use; pools of closed loops are released."""
        loop = asyncio.get_running_loop()
        entry = self._pools.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._lock:
            for ident, (ref, stale) in list(self._pools.items()):
                owner = ref()
                if owner is None or owner.is_closed():
                    del self._pools[ident]
                    stale.close()
            pool = LoopPool(self._conninfo, max_size=self._max_size, timeout=self._timeout)
            if self._closed:
                pool.close()
            self._pools[id(loop)] = (weakref.ref(loop), pool)
            return pool

    def close(self) -> None:
        """Close every loop's idle connections."""
        with self._lock:
            self._closed = True
            pools = [pool for _, pool in self._pools.values()]
            self._pools.clear()
        for pool in pools:
            pool.close()


def close_pools(pool: Pool, apools: AsyncPools) -> None:
    """Close a store's pools: what ``close()`` does, and what a store dropped without it gets
    from its finaliser (in whatever thread collects it; it waits for no thread)."""
    pool.close()
    apools.close()


def _busy(max_size: int, timeout: float) -> str:
    return (f"all {max_size} connections stayed in use for {timeout:g} s "
            "(?pool_size=N allows more)")
