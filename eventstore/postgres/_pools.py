"""Async connections, kept per event loop, with no background task.

An async connection belongs to the loop it was made on, while a store outlives loops: a web
server runs one loop for ever, but scripts and tests call ``asyncio.run`` again and again. So
each loop gets its own small pool, made on first use.

The pool runs no task of its own. psycopg_pool's ``AsyncConnectionPool`` connects in worker
tasks and, when ``asyncio.run`` cancels a worker in the middle of a connect, swallows the
``CancelledError`` and schedules a retry, so the loop never finishes shutting down and
``asyncio.run`` hangs. Here a connection is made in the caller's own task, so a cancellation
reaches the caller, and idle connections are plain objects that any thread can close.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

__all__ = ["AsyncPools", "LoopPool"]


class LoopPool:
    """At most ``max_size`` async connections of one event loop; idle ones are reused.

    Args:
        conninfo: The libpq connection string.
        max_size: The most connections in use at once; further callers wait.
        timeout: Seconds a caller waits for its turn before ``PoolTimeout``.
    """

    def __init__(self, conninfo: str, *, max_size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """An autocommit connection for the duration of the block.

        Raises:
            PoolTimeout: No connection became free within the timeout.
            psycopg.OperationalError: A new connection could not be made.
        """
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no connection became free within {self._timeout:g} s") from None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # A connection left mid-query or mid-transaction (a cancelled task, a lost server) is
        # not worth rescuing: close it, and the next caller connects afresh.
        reusable = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        with self._lock:
            if reusable and not self._closed:
                self._idle.append(conn)
                return
        conn.pgconn.finish()

    def close(self) -> None:
        """Close the idle connections; connections in use close when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()


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
