"""The PostgreSQL store: the contract of ``EventStore`` over pooled psycopg connections.

How positions are ordered without a store-wide lock is told in the package docstring.
"""

from __future__ import annotations

import asyncio
import threading
import time as _time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg

from chatledger.eventstore import _codec
from chatledger.eventstore._append import forks_of, logged_append
from chatledger.eventstore._errors import (
    ConcurrencyError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    StoreError,
)
from chatledger.eventstore._events import Event, Record
from chatledger.eventstore._heads import LogHead
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._log import get_logger, logging_enabled
from chatledger.eventstore._merkle import MerkleTree
from chatledger.eventstore._messages import Message
from chatledger.eventstore._projection import sessions_query
from chatledger.eventstore._rows import records_of, session_of
from chatledger.eventstore._store import (
    AppendResult,
    ErasedEvent,
    EventStore,
    Progress,
    SessionInfo,
    VerifyReport,
    check_limit,
    check_time,
    check_version,
)
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._appending import Appending
from chatledger.eventstore.postgres._auditing import verify_connection, verify_nothing
from chatledger.eventstore.postgres._connecting import open_pools
from chatledger.eventstore.postgres._plans import (
    Duplicate,
    catch_up_plan,
    empty_append,
    erase_plan,
    expected_of,
    rebuild_plan,
    run_async,
)
from chatledger.eventstore.postgres._pools import close_pools
from chatledger.eventstore.postgres._schema import check, describe, open_ledger
from chatledger.eventstore.postgres._tail import asubscribe, check_tail, subscribe
from chatledger.eventstore.postgres._url import PostgresTarget, parse_url, scrub

__all__ = ["PostgresStore"]

log = get_logger("chatledger.postgres")

_NO_LIMIT = 2**62
CATCH_UP_PAGE = 200  # streams per catch-up transaction


class PostgresStore(Appending, EventStore):
    """The event store in one PostgreSQL database (one schema of it, with ``?schema=``).

    Opening never writes, except to migrate a ledger made by an older chatledger. A missing
    ledger (and its schema) is created by the first append, or at once with ``create=True``;
    until then reads see an empty ledger (``erase`` finds no session, ``rebuild`` and ``purge``
    have nothing to do, and none of them creates anything), or, when the schema named by
    ``?schema=`` does not exist (a typo?), raise ``NotFoundError`` saying so. Each read looks
    for the ledger again until it is found, so one that another process creates is read at
    once; from then on the check costs nothing.

    Args:
        url: ``postgresql://user:password@host:port/dbname``; ``?schema=name`` keeps the
            tables in that schema, ``?pool_size=N`` caps the connections per pool; any other
            query parameter goes to libpq.
        durability: ``"full"`` (a returned append is on disk) or ``"fast"``
            (``synchronous_commit=off`` for this store's transactions: an append returns
            before its WAL is flushed, and a server crash may lose the last ~600 ms of
            appends, never corrupt or reorder the log).
        projections: Keep the projections up to date in each append's transaction.
        readonly: Check the schema without creating or migrating anything, and run every
            transaction read-only (``default_transaction_read_only``).
        create: Create the ledger (and its schema) now if it does not exist, as
            ``chatledger init`` does.

    Raises:
        StoreError: The URL is malformed, the server cannot be reached, the login or database
            is refused, the schema holds foreign tables or a newer version, or the ledger
            cannot be created or migrated; with ``readonly``, the schema holds no current
            ledger (nothing is created).
        NotFoundError: ``readonly`` and the schema does not exist (nothing is created).
    """

    def __init__(self, url: str, *, durability: str = "full", projections: bool = True,
                 readonly: bool = False, create: bool = False) -> None:
        self.url = url
        self.durability = durability
        self.readonly = readonly
        self._projections = projections
        self._target: PostgresTarget = parse_url(url, durability=durability, readonly=readonly)
        self._closed = False
        self._lock = threading.Lock()
        self.schema, self._ready = self._setup(create)
        self._where = describe(self.schema, self._target)
        self._pool, self._apools = open_pools(self._target)
        # A store dropped without close() releases its idle connections when collected.
        weakref.finalize(self, close_pools, self._pool, self._apools)
        if projections and not readonly and self._ready:
            try:
                self.catch_up()
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"PostgresStore({self._target.redacted!r})"

    def _setup(self, create: bool) -> tuple[str, bool]:
        """The schema's name, and whether the ledger exists (writing only to create it, with
        ``create``, or to migrate an older one)."""
        try:
            conn = psycopg.connect(self._target.conninfo, autocommit=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL at {self._target.redacted}: "
                             f"{scrub(self._target, e)}") from e
        with conn:
            try:
                if self.readonly:
                    return check(conn, self._target), True
                return open_ledger(conn, self._target, create=create)
            except psycopg.Error as e:
                raise StoreError(f"cannot set up the chatledger tables in "
                                 f"{self._target.redacted}: {scrub(self._target, e)}") from e

    # -- the log ---------------------------------------------------------------------------
    def append(
        self,
        key: KeyLike,
        events: Sequence[Event],
        *,
        expected_version: int | None = None,
        event_ids: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> AppendResult:
        started = _time.perf_counter()
        key, append = self._append_args(key, events, expected_version, event_ids, meta)
        if append is None:
            return empty_append(key, expected_version, self.version(key))
        self._ensure_ledger()
        try:
            result = self._run_append(key, append, expected_version)
        except Duplicate as d:
            result = d.result
        except OutcomeUnknownError as e:
            raise self._restated(key, append, e) from e
        except StoreError as e:
            if not self._lost_race(e):
                raise
            actual = self.version(key)
            raise ConcurrencyError(key.stream_id, expected_of(expected_version, actual),
                                   actual) from e
        return logged_append(log, result, started)

    async def aappend(self, key: KeyLike, events: Sequence[Event], *,
                      expected_version: int | None = None,
                      event_ids: Sequence[str] | None = None,
                      meta: dict[str, Any] | None = None) -> AppendResult:
        """``append`` on this event loop's async pool: it never blocks the loop."""
        started = _time.perf_counter()
        key, append = self._append_args(key, events, expected_version, event_ids, meta)
        if append is None:
            return empty_append(key, expected_version, await self._aversion(key))
        await self._aensure_ledger()
        try:
            result = await self._arun_append(key, append, expected_version)
        except Duplicate as d:
            result = d.result
        except OutcomeUnknownError as e:
            raise self._restated(key, append, e) from e
        except StoreError as e:
            if not self._lost_race(e):
                raise
            actual = await self._aversion(key)
            raise ConcurrencyError(key.stream_id, expected_of(expected_version, actual),
                                   actual) from e
        return logged_append(log, result, started)

    def _read_query(self, key: KeyLike, after_version: int, until_version: int | None,
                    until_time: datetime | None) -> tuple[str, Any]:
        key = SessionKey.coerce(key)
        check_version(after_version, "after_version", optional=False)
        check_version(until_version, "until_version")
        check_time(until_time, "until_time")
        upper = until_version if until_version is not None else _NO_LIMIT
        if until_time is None:
            return SQL.READ_STREAM, (key.stream_id, after_version, upper)
        return SQL.READ_STREAM_UNTIL_TIME, {"sid": key.stream_id, "after": after_version,
                                            "upper": upper,
                                            "time": _codec.format_time(until_time)}

    def read(self, key: KeyLike, *, after_version: int = 0, until_version: int | None = None,
             until_time: datetime | None = None) -> list[Record]:
        sql, params = self._read_query(key, after_version, until_version, until_time)
        if self._empty():
            return []
        return records_of(self._fetch("read", sql, params))

    async def aread(self, key: KeyLike, *, after_version: int = 0,
                    until_version: int | None = None,
                    until_time: datetime | None = None) -> list[Record]:
        """``read`` on this event loop's async pool."""
        sql, params = self._read_query(key, after_version, until_version, until_time)
        if await self._aempty():
            return []
        return records_of(await self._afetch("read", sql, params))

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Record]:
        check_version(after_position, "after_position", optional=False)
        if limit is not None:
            check_limit(limit)
        if self._empty():
            return []
        if limit is None:
            rows = self._fetch("read", SQL.READ_ALL_UNLIMITED, (after_position,))
        else:
            rows = self._fetch("read", SQL.READ_ALL, (after_position, limit))
        return records_of(rows)

    def subscribe(self, after_position: int = 0, *,
                  timeout: float | None = None) -> Iterator[Record]:
        """Every event after ``after_position`` in order, then each new one as it commits.

        Blocks on LISTEN (a dedicated connection) between commits instead of polling; close
        the generator (or break out of the loop) to release the connection.

        Args:
            after_position: Start after this position (0 = from the beginning).
            timeout: Stop after this many seconds without a new event; None waits forever.

        Raises:
            InvalidInputError: A negative position or timeout.
            StoreError: The connection failed or was lost.
        """
        self._check_open()
        check_tail(after_position, timeout)
        return subscribe(self._target, self.schema, after_position, timeout=timeout,
                         ready=self._ready)

    def asubscribe(self, after_position: int = 0, *,
                   timeout: float | None = None) -> AsyncIterator[Record]:
        """``subscribe`` as an async generator (``async for record in store.asubscribe()``).

        Raises:
            InvalidInputError: A negative position or timeout.
            StoreError: The connection failed or was lost.
        """
        self._check_open()
        check_tail(after_position, timeout)
        return asubscribe(self._target, self.schema, after_position, timeout=timeout,
                          ready=self._ready)

    def version(self, key: KeyLike) -> int:
        sid = SessionKey.coerce(key).stream_id
        if self._empty():
            return 0
        rows = self._fetch("read", SQL.STREAM_VERSION, (sid,))
        return int(rows[0][0]) if rows else 0

    async def _aversion(self, key: SessionKey) -> int:
        if await self._aempty():
            return 0
        rows = await self._afetch("read", SQL.STREAM_VERSION, (key.stream_id,))
        return int(rows[0][0]) if rows else 0

    def last_position(self) -> int:
        return 0 if self._empty() else int(self._fetch("read", SQL.LAST_POSITION)[0][0])

    def event_count(self) -> int:
        return 0 if self._empty() else int(self._fetch("read", SQL.EVENT_COUNT)[0][0])

    def sessions(self, *, limit: int = 100, after: str | None = None,
                 **key_filter: str) -> list[SessionInfo]:
        sql, params = sessions_query(SQL.SESSIONS, key_filter, after, limit, true="TRUE",
                                     part_filter=SQL.SESSION_FILTER,
                                     after_filter=SQL.SESSION_AFTER)
        if self._empty():
            return []
        return [session_of(r) for r in self._fetch("read", sql, params)]

    def session(self, key: KeyLike) -> SessionInfo | None:
        sid = SessionKey.coerce(key).stream_id
        if self._empty():
            return None
        rows = self._fetch("read", SQL.SESSION_ONE, (sid,))
        return session_of(rows[0]) if rows else None

    def verify(self, key: KeyLike | None = None, *, against: LogHead | None = None,
               progress: Progress | None = None) -> VerifyReport:
        if against is not None and key is not None:
            raise InvalidInputError("a log head covers the whole log: verify(against=...) "
                                    "takes no key")
        sid = None if key is None else SessionKey.coerce(key).stream_id
        tree = MerkleTree() if against is not None else None
        if self._empty():
            report = verify_nothing(sid, tree, against, progress)
        else:
            with self._connection("verify") as conn:
                report = verify_connection(conn, sid, tree, against, progress)
        if logging_enabled():
            log.info("verified", streams=report.streams, events=report.events,
                     problems=len(report.problems))
        return report

    def _leaves(self, after_position: int) -> Iterator[tuple[int, str, str]]:
        if self._empty():
            return
        while True:
            rows = self._fetch("head", SQL.LEAVES, (after_position, 50_000))
            yield from ((int(p), str(d), str(t)) for p, d, t in rows)
            if len(rows) < 50_000:
                return
            after_position = rows[-1][0]

    def _erase_one(self, key: SessionKey, versions: Sequence[int] | None,
                   reason: str) -> tuple[AppendResult, list[ErasedEvent]]:
        self._check_writable()
        if self._empty():  # nothing to erase, and a failed erasure creates nothing
            raise NotFoundError(f"no session {key.stream_id!r}")
        done: tuple[AppendResult, list[ErasedEvent]] = self._run("erase", erase_plan(
            key, versions, reason, project=self._projections, schema=self.schema))
        if logging_enabled():
            log.info("erased", stream_id=key.stream_id, versions=len(done[1]))
        return done

    def _forks_of(self, stream_id: str) -> list[tuple[str, int, int]]:
        return forks_of(stream_id, self._fetch("erase", SQL.FORK_ROWS))

    def _purge_now(self) -> bool:
        # VACUUM FULL locks each table against every reader and writer while it rewrites it:
        # an administrator's step (``chatledger purge``), not part of every erasure.
        return False

    def purge(self) -> bool:
        """Rewrite the tables that held payloads (``VACUUM FULL``), so no dead row version
        keeps erased bytes in the database's files. Holds off reads and appends while it runs.
        WAL segments already archived and backups still hold what they held.

        Raises:
            StoreError: The store is read-only, or the database refused (e.g. the user does
                not own the tables).
        """
        self._check_open()
        self._check_writable()
        if self._empty():
            return True  # no ledger yet: nothing to purge, and nothing is created
        with self._connection("purge") as conn:
            for statement in SQL.PURGE:
                conn.execute(statement)
        if logging_enabled():
            log.info("purged", schema=self.schema)
        return True

    # -- projections -----------------------------------------------------------------------
    # A load reports whether the projection is behind on its stream (only after appends by a
    # ``projections=False`` store); then it catches that stream up and loads again.
    def load_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        sid = SessionKey.coerce(key).stream_id
        if self._empty():
            return 0, []
        rows = self._fetch("read", SQL.LOAD_CURRENT, (sid,))
        if rows and rows[0][2]:
            self._check_catch_up(sid)
            self._run("catch-up", catch_up_plan(self.schema, [sid]))
            rows = self._fetch("read", SQL.LOAD_CURRENT, (sid,))
        return _current(rows)

    async def aload_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        """``load_history`` on this event loop's async pool."""
        sid = SessionKey.coerce(key).stream_id
        if await self._aempty():
            return 0, []
        rows = await self._afetch("read", SQL.LOAD_CURRENT, (sid,))
        if rows and rows[0][2]:
            self._check_catch_up(sid)
            await self._acatch_up_stream(sid)
            rows = await self._afetch("read", SQL.LOAD_CURRENT, (sid,))
        return _current(rows)

    def _at_query(self, key: KeyLike, version: int | None,
                  time: datetime | None) -> tuple[str, dict[str, Any]]:
        if (version is None) == (time is None):
            raise InvalidInputError("give exactly one of version= or time=")
        check_version(version, "version")
        check_time(time, "time")
        return SQL.LOAD_AT, {"sid": SessionKey.coerce(key).stream_id, "version": version,
                             "time": None if time is None else _codec.format_time(time)}

    def load_history_at(self, key: KeyLike, *, version: int | None = None,
                        time: datetime | None = None) -> tuple[int, list[Message]]:
        sql, params = self._at_query(key, version, time)
        if self._empty():
            return _at(params, [_no_stream_at(params)])
        rows = self._fetch("read", sql, params)
        if rows[0][3]:
            self._check_catch_up(params["sid"])
            self._run("catch-up", catch_up_plan(self.schema, [params["sid"]]))
            rows = self._fetch("read", sql, params)
        return _at(params, rows)

    async def aload_history_at(self, key: KeyLike, *, version: int | None = None,
                               time: datetime | None = None) -> tuple[int, list[Message]]:
        """``load_history_at`` on this event loop's async pool."""
        sql, params = self._at_query(key, version, time)
        if await self._aempty():
            return _at(params, [_no_stream_at(params)])
        rows = await self._afetch("read", sql, params)
        if rows[0][3]:
            self._check_catch_up(params["sid"])
            await self._acatch_up_stream(params["sid"])
            rows = await self._afetch("read", sql, params)
        return _at(params, rows)

    def _check_catch_up(self, sid: str | None) -> None:
        """Catching up writes: on a read-only store, say so instead of letting the server
        refuse the INSERT in a read-only transaction.

        Raises:
            StoreError: The store is read-only.
        """
        if self.readonly:
            what = f"session {sid!r}'s" if sid is not None else "the"
            raise StoreError(f"{what} history projection lags the log on "
                             f"{self._target.redacted} (appends by a projections=False store), "
                             "and this store is opened read-only: open it for writing once to "
                             "bring it up to date; nothing was written")

    async def _acatch_up_stream(self, sid: str) -> int:
        async with self._aconnection("catch-up") as conn:
            return await run_async(conn, catch_up_plan(self.schema, [sid]), self.schema)

    def _unprojected(self, after: str) -> list[str]:
        return [r[0] for r in self._fetch("catch-up", SQL.UNPROJECTED, (after, CATCH_UP_PAGE))]

    def catch_up(self) -> int:
        if self._empty():
            return 0
        if not self._fetch("catch-up", SQL.ANY_UNPROJECTED)[0][0]:
            return 0  # the common case (already current) takes no lock
        self._check_catch_up(None)
        n, after = 0, ""
        while sids := self._unprojected(after):
            n += int(self._run("catch-up", catch_up_plan(self.schema, sids)))
            after = sids[-1]
        if n and logging_enabled():
            log.info("projection_caught_up", projection="history", events=n)
        return n

    def rebuild(self, *, progress: Progress | None = None) -> int:
        self._check_writable()
        if self._empty():
            return 0  # nothing to rebuild, and nothing is created
        n = int(self._run("rebuild", rebuild_plan(progress=progress)))
        if logging_enabled():
            log.info("projection_rebuilt", projection="history", events=n)
        return n

    def stats(self) -> dict[str, Any]:
        if self._empty():
            sessions, events, messages, size = 0, 0, 0, 0
        else:
            sessions, events, messages, size = self._fetch("stats", SQL.STATS,
                                                           (list(SQL.TABLES),))[0]
        return {"backend": "postgresql", "url": self._target.redacted, "schema": self.schema,
                "sessions": sessions, "events": events, "projected_messages": messages,
                "bytes": int(size), "durability": self.durability}

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the pools; connections still in use close when they are given back."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
        apools = getattr(self, "_apools", None)
        if apools is not None:
            apools.close()

    async def aclose(self) -> None:
        """``close`` without blocking the event loop."""
        await asyncio.to_thread(self.close)


def _current(rows: list[tuple[Any, ...]]) -> tuple[int, list[Message]]:
    if not rows:
        return 0, []
    version, data, _ = rows[0]
    return int(version), _codec.decode_messages(data) if data else []


def _no_stream_at(params: dict[str, Any]) -> tuple[Any, ...]:
    """``LOAD_AT``'s row for a stream that does not exist."""
    return None, params["version"] or 0, None, None


def _at(params: dict[str, Any], rows: list[tuple[Any, ...]]) -> tuple[int, list[Message]]:
    head, v, data, _ = rows[0]
    head = head or 0
    if params["version"] is not None and params["version"] > head:
        raise NotFoundError(f"session {params['sid']!r} is at version {head}; "
                            f"version {params['version']} does not exist yet")
    return int(v), _codec.decode_messages(data) if data else []
