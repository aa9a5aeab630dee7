"""The SQLite backend: the embedded default store.

One connection per store, guarded by a lock; WAL lets other processes read while one writes,
and every write takes the write lock up front (``BEGIN IMMEDIATE``) so a transaction never has
to be retried halfway. The projections are updated in the append's own transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time as _time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from chatledger.eventstore import _codec
from chatledger.eventstore._append import (
    Prepared,
    duplicate_result,
    erase_targets,
    erased_events,
    forks_of,
    logged_append,
    prepare,
    stamp,
)
from chatledger.eventstore._errors import (
    ConcurrencyError,
    DuplicateEventError,
    InvalidInputError,
    NotFoundError,
    StoreError,
)
from chatledger.eventstore._events import Event, MessageRedacted, Record
from chatledger.eventstore._heads import LogHead
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._log import get_logger, logging_enabled
from chatledger.eventstore._merkle import MerkleTree
from chatledger.eventstore._messages import Message
from chatledger.eventstore._projection import (
    appended_rows,
    prepared_steps,
    sessions_query,
)
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
from chatledger.eventstore.sqlite import _sql as SQL
from chatledger.eventstore.sqlite._auditing import verify_connection
from chatledger.eventstore.sqlite._opening import (
    BUSY_TIMEOUT_MS,
    Opened,
    create_file,
    describe,
    empty_ledger,
    open_file,
    open_memory,
    rollback,
    sqlite_path,
)
from chatledger.eventstore.sqlite._projecting import catch_up_locked, project

__all__ = ["SQLiteStore"]

log = get_logger("chatledger.sqlite")


class SQLiteStore(EventStore):
    """The event store on one SQLite file (or in memory).

    Opening never writes. A missing file is created by the first append (or at once with
    ``create=True``); until then reads see an empty ledger. ``readonly=True`` opens the file
    with ``mode=ro`` (and ``immutable=1`` when the file or its folder cannot be written, as
    on an auditor's read-only copy), so reads take no write lock and leave it byte-identical.
    A file that is not a chatledger ledger (empty, or other tables) is refused untouched.
    """

    def __init__(self, url: str, *, durability: str = "full", projections: bool = True,
                 readonly: bool = False, create: bool = False) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.durability = durability
        self.readonly = readonly
        self._projections = projections
        self._lock = threading.RLock()
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._empty: sqlite3.Connection | None = None
        if self.path == ":memory:":
            self._conn = open_memory(durability).conn
            return
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise StoreError(f"cannot open SQLite database {self.path!r}: "
                             f"directory {parent!r} does not exist")
        if os.path.exists(self.path):
            self._adopt(open_file(self.path, readonly=readonly, create=create,
                                  durability=durability))
        elif readonly:
            raise NotFoundError(f"no chatledger database at {self.path!r}")
        elif create:
            self._adopt(create_file(self.path, durability))
        if projections and self._conn is not None:
            if not self.readonly:
                self.catch_up()
            elif self._read(lambda conn: len(set(conn.execute(SQL.BOTH_POSITIONS).fetchone()))) > 1:
                # Behind the log (a projections=False load): history reads must catch up,
                # which a read-only store cannot, so they say so instead of serving stale rows.
                self._projections = False

    def _adopt(self, opened: Opened) -> None:
        self._conn = opened.conn
        # A file this process cannot write opens read-only: writes then say so.
        self.readonly = self.readonly or opened.readonly

    def _connection(self, *, write: bool) -> sqlite3.Connection:
        """The file's connection; before the file exists, an empty in-memory ledger for reads
        (or, for a write, the newly made file)."""
        if self._conn is None:
            if write:
                self._adopt(create_file(self.path, self.durability))
            elif os.path.exists(self.path):
                self._adopt(open_file(self.path, readonly=self.readonly, create=False,
                                      durability=self.durability))
            else:
                if self._empty is None:
                    self._empty = empty_ledger()
                return self._empty
        assert self._conn is not None
        return self._conn

    @property
    def db(self) -> Any:
        """The database as a ``sqlite_utils.Database`` on this store's connection.

        For inspection (``store.db["events"].count``, ``store.db.schema``); writes must go
        through ``append`` so digests, chains and projections stay right. Imported on first use,
        since sqlite-utils pulls in more than a chat app needs at start-up.
        """
        import sqlite_utils

        with self._lock:
            return sqlite_utils.Database(self._connection(write=False))

    # -- plumbing --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path!r} is closed")

    def _write(self, fn: Any) -> Any:
        """Run ``fn(conn)`` in one write transaction; roll back on any error."""
        self._check_open()
        with self._lock:
            if self.readonly:
                raise StoreError(f"{self.path!r} is opened read-only (or is on read-only "
                                 "media); nothing was written")
            conn = self._connection(write=True)
            try:
                conn.execute(SQL.BEGIN_WRITE)
            except sqlite3.Error as e:
                raise StoreError(f"cannot start a write on {self.path!r}: {describe(e)}; "
                                 "nothing was written") from e
            try:
                result = fn(conn)
                conn.execute(SQL.COMMIT)
            except BaseException as e:
                rollback(conn)
                if isinstance(e, sqlite3.IntegrityError) and "event_id" in str(e):
                    raise DuplicateEventError(f"an event id is already stored: {e}") from e
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"write to {self.path!r} failed, nothing was written: "
                                     f"{describe(e)}") from e
                if isinstance(e, RecursionError):
                    raise InvalidInputError("the append is nested too deeply to store; "
                                            "nothing was written") from e
                raise
            return result

    def _read(self, fn: Any) -> Any:
        """Run ``fn(conn)`` in one read transaction, so multi-statement reads are consistent."""
        self._check_open()
        with self._lock:
            try:
                conn = self._connection(write=False)
                conn.execute(SQL.BEGIN_READ)
                try:
                    return fn(conn)
                finally:
                    if conn.in_transaction:
                        conn.execute(SQL.COMMIT)
            except sqlite3.Error as e:
                raise StoreError(f"read from {self.path!r} failed: {describe(e)}") from e

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
        key = SessionKey.coerce(key)
        check_version(expected_version, "expected_version")
        prepared, meta_text = prepare(events, event_ids, meta)
        started = _time.perf_counter()
        if not prepared:
            current = self.version(key)
            if expected_version is not None and expected_version != current:
                raise ConcurrencyError(key.stream_id, expected_version, current)
            return AppendResult(key.stream_id, current, [])
        result: AppendResult = self._write(
            lambda conn: self._append_locked(conn, key, prepared, meta_text, expected_version,
                                             event_ids is not None)
        )
        return logged_append(log, result, started)

    def _append_locked(
        self, conn: sqlite3.Connection, key: SessionKey, prepared: list[Prepared],
        meta_text: str, expected_version: int | None, check_ids: bool,
    ) -> AppendResult:
        sid = key.stream_id
        if check_ids:
            found = self._find_duplicate(conn, sid, prepared)
            if found is not None:
                return found
        last_pos, checkpoint, version, chain, updated_at, _ = conn.execute(
            SQL.APPEND_STATE, (sid,)).fetchone()
        new_stream = version is None
        if new_stream:
            version, chain = 0, _codec.GENESIS
        if expected_version is not None and expected_version != version:
            raise ConcurrencyError(sid, expected_version, version)
        if self._projections and checkpoint != SQL.CAUGHT_UP:
            # Behind after projections=False appends (or at the log's end in a file written
            # by schema 1): apply what is missing, then the checkpoint says "all of it".
            if checkpoint != last_pos:
                catch_up_locked(conn)
            conn.execute(SQL.SET_CHECKPOINT, (SQL.CAUGHT_UP, "history"))
        elif not self._projections and checkpoint == SQL.CAUGHT_UP:
            conn.execute(SQL.SET_CHECKPOINT, (last_pos, "history"))
        stamped = stamp(sid, prepared, meta_text, version=version, chain=chain,
                        first_position=last_pos + 1, now=_codec.now_text(), updated_at=updated_at)
        conn.executemany(SQL.INSERT_EVENT, stamped.rows)
        now = stamped.recorded_at
        added = 0
        if self._projections:
            if new_stream:
                # the catalog row must exist before a clear or tag in this append touches it
                self._insert_stream(conn, key, 0, _codec.GENESIS, now)
                new_stream = False
            rows = appended_rows(sid, prepared, version + 1)
            if rows is None:
                added = project(conn, sid, prepared_steps(prepared, version + 1))
            elif rows:
                conn.executemany(SQL.INSERT_HISTORY, rows)
                added = len(rows)
        if new_stream:
            self._insert_stream(conn, key, stamped.version, stamped.chain, now)
        else:
            conn.execute(SQL.UPDATE_STREAM_HEAD, (stamped.version, stamped.chain, now, added, sid))
        return AppendResult(sid, stamped.version, stamped.positions)

    @staticmethod
    def _insert_stream(conn: sqlite3.Connection, key: SessionKey, version: int, chain: str,
                       now: str) -> None:
        sid = key.stream_id
        conn.execute(SQL.INSERT_STREAM, (sid, _codec.encode(key.parts).decode(), version, chain,
                                         now, now, 0))
        conn.executemany(SQL.INSERT_KEY_PART, [(n, v, sid) for n, v in key.parts.items()])

    def _find_duplicate(
        self, conn: sqlite3.Connection, sid: str, prepared: list[Prepared]
    ) -> AppendResult | None:
        ids = [p.event_id for p in prepared]
        rows = conn.execute(SQL.FIND_EVENT_IDS, (_codec.encode(ids).decode(),)).fetchall()
        return duplicate_result(sid, prepared, rows)

    def catch_up(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            last, checkpoint = conn.execute(SQL.BOTH_POSITIONS).fetchone()
            if checkpoint in (SQL.CAUGHT_UP, last):
                return 0
            n = catch_up_locked(conn)
            if logging_enabled():
                log.info("projection_caught_up", projection="history", events=n)
            return n
        # A quick read first: the common case (already current) takes no write lock.
        last, checkpoint = self._read(lambda conn: conn.execute(SQL.BOTH_POSITIONS).fetchone())
        if checkpoint in (SQL.CAUGHT_UP, last):
            return 0
        if self.readonly:
            raise StoreError(f"the projections of {self.path!r} are behind the log; open it "
                             "for writing once to bring them up to date")
        return int(self._write(run))

    def _no_file_yet(self) -> bool:
        """True before a new path's first append: nothing to rebuild or erase, and neither
        may create the file."""
        with self._lock:
            return self._conn is None and not os.path.exists(self.path)

    def rebuild(self, *, progress: Progress | None = None) -> int:
        if self._no_file_yet():
            return 0

        def run(conn: sqlite3.Connection) -> int:
            for statement in SQL.statements(SQL.RESET_PROJECTION):
                conn.execute(statement)
            return catch_up_locked(conn, page=20000, progress=progress)
        n = int(self._write(run))
        if logging_enabled():
            log.info("projection_rebuilt", projection="history", events=n)
        return n

    def read(
        self,
        key: KeyLike,
        *,
        after_version: int = 0,
        until_version: int | None = None,
        until_time: datetime | None = None,
    ) -> list[Record]:
        key = SessionKey.coerce(key)
        check_version(after_version, "after_version", optional=False)
        check_version(until_version, "until_version")
        check_time(until_time, "until_time")
        sid = key.stream_id

        def run(conn: sqlite3.Connection) -> list[Record]:
            upper = until_version if until_version is not None else 2**62
            if until_time is not None:
                at = conn.execute(SQL.VERSION_AT_TIME,
                                  (sid, _codec.format_time(until_time))).fetchone()[0]
                upper = min(upper, at or 0)
            return records_of(conn.execute(SQL.READ_STREAM, (sid, after_version, upper)))
        result: list[Record] = self._read(run)
        return result

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Record]:
        check_version(after_position, "after_position", optional=False)
        if limit is not None:
            check_limit(limit)
        rows = self._read(lambda conn: conn.execute(
            SQL.READ_ALL, (after_position, -1 if limit is None else limit)).fetchall())
        return records_of(rows)

    def version(self, key: KeyLike) -> int:
        sid = SessionKey.coerce(key).stream_id
        row = self._read(lambda conn: conn.execute(SQL.STREAM_VERSION, (sid,)).fetchone())
        return int(row[0]) if row else 0

    def last_position(self) -> int:
        return int(self._read(lambda conn: conn.execute(SQL.LAST_POSITION).fetchone()[0]))

    def event_count(self) -> int:
        # positions are handed out from 1 without gaps (a rolled-back append returns its own)
        return self.last_position()

    def sessions(
        self, *, limit: int = 100, after: str | None = None, **key_filter: str
    ) -> list[SessionInfo]:
        sql, params = sessions_query(SQL.SESSIONS, key_filter, after, limit, true="1",
                                     part_filter=SQL.SESSION_FILTER,
                                     after_filter=SQL.SESSION_AFTER)
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [session_of(r) for r in rows]

    def session(self, key: KeyLike) -> SessionInfo | None:
        sid = SessionKey.coerce(key).stream_id
        row = self._read(lambda conn: conn.execute(SQL.SESSION_ONE, (sid,)).fetchone())
        return session_of(row) if row else None

    def verify(self, key: KeyLike | None = None, *, against: LogHead | None = None,
               progress: Progress | None = None) -> VerifyReport:
        if against is not None and key is not None:
            raise InvalidInputError("a log head covers the whole log: verify(against=...) "
                                    "takes no key")
        sid = None if key is None else SessionKey.coerce(key).stream_id
        tree = MerkleTree() if against is not None else None

        report: VerifyReport = self._read(
            lambda conn: verify_connection(conn, sid, tree, against, progress))
        if logging_enabled():
            log.info("verified", streams=report.streams, events=report.events,
                     problems=len(report.problems))
        return report

    def _leaves(self, after_position: int) -> Iterator[tuple[int, str, str]]:
        while True:
            rows: list[tuple[int, str, str]] = self._read(
                lambda conn, after=after_position: conn.execute(SQL.LEAVES, (after, 50_000))
                .fetchall())
            yield from rows
            if len(rows) < 50_000:
                return
            after_position = rows[-1][0]

    def _erase_one(self, key: SessionKey, versions: Sequence[int] | None,
                   reason: str) -> tuple[AppendResult, list[ErasedEvent]]:
        sid = key.stream_id
        if self._no_file_yet():
            raise NotFoundError(f"no session {sid!r}")

        def run(conn: sqlite3.Connection) -> tuple[AppendResult, list[ErasedEvent]]:
            head = conn.execute(SQL.STREAM_VERSION, (sid,)).fetchone()
            if head is None:
                raise NotFoundError(f"no session {sid!r}")
            stored = conn.execute(SQL.ERASE_CANDIDATES, (sid,)).fetchall()
            targets = erase_targets(sid, head[0], stored, versions)
            if not targets:
                return AppendResult(sid, head[0], []), []
            events = [MessageRedacted(version=v, reason=reason) for v in targets]
            prepared, meta_text = prepare(events, None, {"actor": "erase"}, erasing=True)
            result = self._append_locked(conn, key, prepared, meta_text, None, False)
            conn.executemany(SQL.ERASE_PAYLOAD, [(sid, v) for v in targets])
            return result, erased_events(sid, stored, targets)
        done: tuple[AppendResult, list[ErasedEvent]] = self._write(run)
        if logging_enabled():
            log.info("erased", stream_id=sid, versions=len(done[1]))
        return done

    def _forks_of(self, stream_id: str) -> list[tuple[str, int, int]]:
        rows = self._read(lambda conn: conn.execute(SQL.FORK_ROWS).fetchall())
        return forks_of(stream_id, rows)

    def purge(self) -> bool:
        """Checkpoint the WAL into the file and truncate it, without waiting on readers.

        ``secure_delete`` zeroes what an erasure frees in the file's pages; the checkpoint
        moves those zeroed pages over the old ones and empties the WAL, which still holds
        the old page images. A reader with an older snapshot keeps the WAL alive: then
        nothing waits for it (no busy timeout) and the result is False.

        Raises:
            StoreError: The checkpoint failed for another reason.
        """
        self._check_open()
        if self.path == ":memory:" or self._no_file_yet():
            return True
        with self._lock:
            if self.readonly:
                raise StoreError(f"{self.path!r} is opened read-only; purge writes to it")
            conn = self._connection(write=True)
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                try:
                    busy, _, _ = conn.execute(SQL.CHECKPOINT_TRUNCATE).fetchone()
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    busy = 1
                else:
                    raise StoreError(f"cannot checkpoint the WAL of {self.path!r}: {e}") from e
            except sqlite3.Error as e:
                raise StoreError(f"cannot checkpoint the WAL of {self.path!r}: {e}") from e
        purged = bool(busy == 0)
        if logging_enabled():
            log.info("purged" if purged else "purge_blocked", path=self.path)
        return purged

    # -- projections -----------------------------------------------------------------------
    def load_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        sid = SessionKey.coerce(key).stream_id
        if not self._projections:
            self.catch_up()  # this store does not keep the tables current: bring them up first
        row = self._read(lambda conn: conn.execute(SQL.LOAD_CURRENT, (sid,)).fetchone())
        if row is None:
            return 0, []
        return int(row[0]), _codec.decode_messages(row[1]) if row[1] else []

    def load_history_at(self, key: KeyLike, *, version: int | None = None,
                        time: datetime | None = None) -> tuple[int, list[Message]]:
        if (version is None) == (time is None):
            raise InvalidInputError("give exactly one of version= or time=")
        check_version(version, "version")
        check_time(time, "time")
        sid = SessionKey.coerce(key).stream_id
        if not self._projections:
            self.catch_up()

        def run(conn: sqlite3.Connection) -> tuple[int, str | None]:
            row = conn.execute(SQL.STREAM_VERSION, (sid,)).fetchone()
            head = row[0] if row else 0
            if time is not None:
                at = conn.execute(SQL.VERSION_AT_TIME, (sid, _codec.format_time(time))).fetchone()[0]
                v = at or 0
            else:
                assert version is not None
                if version > head:
                    raise NotFoundError(f"session {sid!r} is at version {head}; "
                                        f"version {version} does not exist yet")
                v = version
            cleared = conn.execute(SQL.LAST_CLEAR_AT, (sid, v)).fetchone()[0] or 0
            return v, conn.execute(SQL.LOAD_RANGE, (sid, cleared, v)).fetchone()[0]
        v, data = self._read(run)
        return v, _codec.decode_messages(data) if data else []

    def stats(self) -> dict[str, Any]:
        sessions, events, messages = self._read(lambda conn: conn.execute(SQL.STATS).fetchone())
        size = os.path.getsize(self.path) if self.path != ":memory:" and \
            os.path.exists(self.path) else 0
        with self._lock:
            rows = {name: self.db[name].count for name in SQL.TABLES}
        return {"backend": "sqlite", "path": self.path, "sessions": sessions, "events": events,
                "projected_messages": messages, "bytes": size, "durability": self.durability,
                "rows": rows}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                for conn in (self._conn, self._empty):
                    if conn is not None:
                        conn.close()


