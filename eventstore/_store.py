"""The store contract every backend implements, and the values it returns.

``EventStore`` is an abstract base class: a backend that misses a method cannot be
instantiated, and mypy says so where it is built. The shared definitions of what an append,
a projection and a verify do live in ``_append``, ``_projection`` and ``_verify``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Union

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._errors import InvalidInputError
from chatledger.eventstore._events import Event, HistoryCleared, Record
from chatledger.eventstore._heads import HeadCache, InclusionProof, LogHead
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._messages import Message

__all__ = [
    "AppendResult",
    "ErasedEvent",
    "ErasureReceipt",
    "EventStore",
    "MAX_INT",
    "PROGRESS_EVERY",
    "Problem",
    "Progress",
    "SessionInfo",
    "VerifyReport",
    "check_limit",
    "check_time",
    "check_version",
]

# A fork's copy holds the parent's messages after its last clear (see ``erase``).
_CLEARED = HistoryCleared.__struct_config__.tag


class AppendResult(msgspec.Struct, frozen=True):
    """What an append wrote: the stream's new version and each event's global position.

    ``duplicate`` is true when every event id was already stored by an identical earlier
    append; then nothing was written and the original versions and positions are returned.
    """

    stream_id: str
    version: int
    positions: list[int]
    duplicate: bool = False

    @property
    def first_version(self) -> int:
        """The version of the first event of this append."""
        return self.version - len(self.positions) + 1


class SessionInfo(msgspec.Struct, frozen=True):
    """One row of the session catalog."""

    key: SessionKey
    stream_id: str
    version: int
    message_count: int
    created_at: datetime
    last_active: datetime
    tags: list[str]

    @property
    def cursor(self) -> str:
        """Pass as ``after=`` to ``sessions`` to get the page after this row."""
        return f"{_codec.format_time(self.last_active)}|{self.stream_id}"


class Problem(msgspec.Struct, frozen=True):
    """One broken row or link found by ``verify``.

    ``kind`` is one of ``altered`` (a row no longer matches its digest), ``missing`` (versions,
    positions or a stream's tail are gone), ``reordered`` (a chain link, version or time out of
    order), ``erased`` (a payload removed without a ``MessageRedacted``), ``catalog`` (a
    ``streams`` or ``stream_keys`` row disagrees with the log), ``projection`` (the history or
    clears table disagrees with the fold of the log), ``integrity`` (the database's own check
    failed) or ``head`` (the log does not extend a log head kept elsewhere). A problem of the
    whole log has ``stream_id`` "" and ``version`` 0.
    """

    stream_id: str
    version: int
    position: Union[int, None]
    kind: str
    detail: str


class ErasedEvent(msgspec.Struct, frozen=True):
    """One event whose payload an erasure scrubbed, and the salted digest it keeps."""

    stream_id: str
    version: int
    position: int
    payload_digest: str


class ErasureReceipt(msgspec.Struct, frozen=True):
    """What ``erase`` did.

    ``erased`` lists every scrubbed event: the session's and those of forks that carried
    copies of its messages. ``positions`` are the ``MessageRedacted`` events written (in every
    stream), ``version`` the session's version after them. ``before``/``after`` are log heads
    around the erasure. ``purged`` is true when the erased bytes are gone from the database's
    storage too (SQLite: its file, free pages and WAL); false means something (a reader, on
    SQLite; always on PostgreSQL, until ``purge``) still holds them: run ``purge`` later.
    """

    stream_id: str
    version: int
    positions: list[int]
    erased: list[ErasedEvent]
    before: LogHead
    after: LogHead
    purged: bool

    @property
    def versions(self) -> list[int]:
        """The erased versions of the session itself."""
        return [e.version for e in self.erased if e.stream_id == self.stream_id]


class VerifyReport(msgspec.Struct, frozen=True):
    """The outcome of ``verify``: ``ok`` only when no problem was found."""

    streams: int
    events: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when every digest and chain link checked out."""
        return not self.problems


Progress = Callable[[int], None]
"""Called now and then with how many more events were processed (e.g. a progress bar's update)."""

PROGRESS_EVERY = 10_000
MAX_INT = 2**63 - 1
"""The largest version, position or page size: both backends store them as 64-bit ints."""


def check_time(moment: datetime | None, name: str) -> None:
    """Reject naive datetimes: a point in time must say which zone it is in.

    Raises:
        InvalidInputError: ``moment`` is naive or not a datetime.
    """
    if moment is None:
        return
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc))")


def check_version(value: int | None, name: str, *, optional: bool = True) -> None:
    """Reject versions that are not non-negative ints (None passes where ``optional``: an
    ``expected_version`` or ``until_version`` that says "any"; a start such as
    ``after_version`` must be an int, 0 for the beginning, never None).

    Raises:
        InvalidInputError: ``value`` is negative or not an int.
    """
    if value is None:
        if optional:
            return
        raise InvalidInputError(f"{name} must be an int from 0 to 2**63 - 1 (0 for the "
                                "beginning), got None")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INT:
        raise InvalidInputError(f"{name} must be an int from 0 to 2**63 - 1, got {value!r}")




def check_limit(limit: object, name: str = "limit") -> None:
    """Reject page sizes that are not positive ints.

    Raises:
        InvalidInputError: ``limit`` is not an int of at least 1.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_INT:
        raise InvalidInputError(f"{name} must be an int from 1 to 2**63 - 1, got {limit!r}")


class EventStore(ABC):
    """The append-only log and its projections. Open one with ``open_store``.

    Backends implement the synchronous methods; the ``a``-prefixed twins run them off the
    event loop unless a backend has native async I/O.
    """

    url: str

    # -- the log -------------------------------------------------------------------------
    @abstractmethod
    def append(
        self,
        key: KeyLike,
        events: Sequence[Event],
        *,
        expected_version: int | None = None,
        event_ids: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> AppendResult:
        """Append events to one stream atomically.

        Args:
            key: The session key (a plain string means ``session_id``).
            events: The events of one call; they commit together or not at all.
            expected_version: None appends unconditionally; an int demands the stream be at
                exactly that version (0 = empty).
            event_ids: One UUID per event. Re-appending the same ids is a no-op that returns
                the original result, so a retried append never duplicates.
            meta: JSON-able envelope metadata (run id, actor, causation/correlation ids).

        Raises:
            ConcurrencyError: The stream is not at ``expected_version``; nothing was written.
            DuplicateEventError: An event id is stored already, but not by an identical append.
            InvalidKeyError: The key is malformed.
            InvalidInputError: An item is not an event, or a value (in an event or meta)
                would not read back equal: NaN, infinity, a tuple, nesting too deep...
            OutcomeUnknownError: The connection was lost after COMMIT was sent; retry with
                ``event_ids=error.event_ids``.
            StoreError: The database failed, is read-only or full; nothing was written.
        """
        raise NotImplementedError

    @abstractmethod
    def read(
        self,
        key: KeyLike,
        *,
        after_version: int = 0,
        until_version: int | None = None,
        until_time: datetime | None = None,
    ) -> list[Record]:
        """Events of one stream, in version order.

        Raises:
            InvalidInputError: A negative version or a naive datetime.
        """
        raise NotImplementedError

    @abstractmethod
    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[Record]:
        """Every event after ``after_position``, in global order."""
        raise NotImplementedError

    def iter_all(self, after_position: int = 0, *, page: int = 5000) -> Iterator[Record]:
        """Every event after ``after_position``, read page by page so memory stays flat."""
        while True:
            batch = self.read_all(after_position, page)
            yield from batch
            if len(batch) < page:
                return
            after_position = batch[-1].position

    @abstractmethod
    def version(self, key: KeyLike) -> int:
        """The stream's current version (0 when it has no events)."""
        raise NotImplementedError

    @abstractmethod
    def last_position(self) -> int:
        """The highest position handed out so far."""
        raise NotImplementedError

    @abstractmethod
    def event_count(self) -> int:
        """How many events the log holds (positions need not be consecutive: PostgreSQL's
        are not, so this, not ``last_position``, sizes progress over the whole log)."""
        raise NotImplementedError

    @abstractmethod
    def sessions(
        self, *, limit: int = 100, after: str | None = None, **key_filter: str
    ) -> list[SessionInfo]:
        """The session catalog, most recently active first.

        Args:
            limit: Page size.
            after: The ``cursor`` of the last row of the previous page.
            **key_filter: Key parts that must match exactly, e.g. ``user_id="123"``.

        Raises:
            InvalidInputError: A bad cursor or limit.
        """
        raise NotImplementedError

    @abstractmethod
    def session(self, key: KeyLike) -> SessionInfo | None:
        """The catalog row of one session, or None if it has no events."""
        raise NotImplementedError

    @abstractmethod
    def verify(self, key: KeyLike | None = None, *, against: LogHead | None = None,
               progress: Progress | None = None) -> VerifyReport:
        """Check every stored row, the catalog and the projections against the log.

        Recomputes every digest and chain link from each row's own columns; checks versions
        1..n per stream (and positions against the position counter where they are gapless),
        the catalog and key rows, and the history and clears tables against the fold of the
        log; and runs the database's own integrity check.

        Args:
            key: One session, or None for the whole log.
            against: A log head kept elsewhere: the log must be an append-only extension of it
                (an RFC 6962 consistency proof), or the report has a ``head`` problem.
            progress: Called now and then with how many more events were checked.

        Raises:
            InvalidInputError: ``against`` given with a key (a head covers the whole log).
        """
        raise NotImplementedError

    # -- audit -----------------------------------------------------------------------------
    def head(self) -> LogHead:
        """The log's Merkle tree head (RFC 6962) over every event's digest, in position order.

        On PostgreSQL only the prefix below the reader horizon is covered (events that no
        commit still running can precede). The tree is kept in memory by this store object,
        so a head after the first reads and hashes only the events added since.
        """
        cache = self._head_cache()
        with cache.lock:
            cache.extend(self._leaves(cache.last_position))
            return cache.head()

    def prove(self, position: int, head: LogHead | None = None) -> InclusionProof:
        """An inclusion proof of the event at ``position`` in ``head`` (the current head by
        default); ``verify_proof`` checks it without a database.

        Raises:
            InvalidInputError: A bad position, or a head that is not of this log.
            NotFoundError: No event at ``position`` in the head.
        """
        check_version(position, "position")
        cache = self._head_cache()
        with cache.lock:
            cache.extend(self._leaves(cache.last_position))
            return cache.prove(position, head)

    def _head_cache(self) -> HeadCache:
        cache = self.__dict__.get("_heads")
        if cache is None:
            cache = self.__dict__.setdefault("_heads", HeadCache())
        return cache  # type: ignore[no-any-return]

    @abstractmethod
    def _leaves(self, after_position: int) -> Iterator[tuple[int, str, str]]:
        """(position, digest, recorded_at) of every event after ``after_position`` (below the
        reader horizon), in position order."""
        raise NotImplementedError

    def erase(self, key: KeyLike, *, versions: Sequence[int] | None = None,
              reason: str = "erasure requested") -> ErasureReceipt:
        """Lawfully erase payloads (all content of the session by default), and every copy.

        Each payload and its salt are removed; its salted digest stays, so ``verify`` still
        passes and the digest says nothing about the text. A ``MessageRedacted`` event per
        erased event records the erasure. Forks that carry copies of erased messages in their
        ``SessionForked`` have that event erased too (and forks of those forks). Then the
        erased bytes are purged from storage where that can be done without waiting on
        readers; the receipt says whether it was (else run ``purge`` later).

        Raises:
            NotFoundError: The session or a version does not exist.
            InvalidInputError: ``versions`` is not a list of ints, or names a version whose
                event holds no content.
        """
        key = SessionKey.coerce(key)
        before = self.head()
        result, erased = self._erase_one(key, versions, reason)
        positions = list(result.positions)
        pending = [(key.stream_id, [e.version for e in erased])]
        while pending:
            sid, done = pending.pop()
            if not done:
                continue
            forks = self._forks_of(sid)
            # A fork copies sid's history at its parent_version: the messages after the last
            # clear before it. So it carries an erased payload only from between the two.
            clears = self._clear_versions(sid, max((f[2] for f in forks), default=0))
            for fork_sid, fork_version, parent_version in forks:
                cleared = max((c for c in clears if c <= parent_version), default=0)
                if any(cleared < v <= parent_version for v in done):
                    more, copies = self._erase_one(
                        SessionKey.from_stream_id(fork_sid), [fork_version],
                        f"{reason} (a copy of {sid})")
                    positions += more.positions
                    erased += copies
                    pending.append((fork_sid, [e.version for e in copies]))
        purged = self._purge_now() if erased else True
        return ErasureReceipt(stream_id=key.stream_id, version=result.version,
                              positions=positions, erased=erased, before=before,
                              after=self.head(), purged=purged)

    def _clear_versions(self, sid: str, until: int) -> list[int]:
        """The versions of ``sid``'s clears up to ``until`` (one read; none when 0)."""
        if until == 0:
            return []
        return [r.version for r in self.read(SessionKey.from_stream_id(sid), until_version=until)
                if r.type == _CLEARED]

    @abstractmethod
    def _erase_one(self, key: SessionKey, versions: Sequence[int] | None,
                   reason: str) -> tuple[AppendResult, list[ErasedEvent]]:
        """Erase payloads of one stream in one transaction (see ``erase``)."""
        raise NotImplementedError

    @abstractmethod
    def _forks_of(self, stream_id: str) -> list[tuple[str, int, int]]:
        """(stream_id, version, parent_version) of each unerased ``SessionForked`` whose
        parent is ``stream_id``."""
        raise NotImplementedError

    def _purge_now(self) -> bool:
        """The purge ``erase`` runs right away; a backend whose purge is too heavy to run on
        every erasure returns False, and the receipt says to run ``purge`` later."""
        return self.purge()

    @abstractmethod
    def purge(self) -> bool:
        """Remove erased bytes from storage; True when nothing of them is left to remove.

        SQLite: checkpoint and truncate the WAL (``secure_delete`` has zeroed the freed space
        already), without waiting on readers: False while a reader holds an older snapshot.
        PostgreSQL: ``VACUUM FULL`` of the tables that held payloads, so no dead row version
        keeps them; WAL archives and backups are outside its reach.

        Raises:
            StoreError: The database refused.
        """
        raise NotImplementedError

    # -- projections ---------------------------------------------------------------------
    @abstractmethod
    def load_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        """The current history of one session and the stream version it reflects."""
        raise NotImplementedError

    @abstractmethod
    def load_history_at(self, key: KeyLike, *, version: int | None = None,
                        time: datetime | None = None) -> tuple[int, list[Message]]:
        """The history as it stood at a version or time, and that version.

        Raises:
            InvalidInputError: Both or neither of version and time; a naive datetime.
            NotFoundError: ``version`` is beyond the stream's head.
        """
        raise NotImplementedError

    @abstractmethod
    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Drop the projection tables and replay the whole log; returns events replayed.

        Args:
            progress: Called after each page with how many more events were replayed.
        """
        raise NotImplementedError

    @abstractmethod
    def catch_up(self) -> int:
        """Apply events the projections have not seen yet; returns how many."""
        raise NotImplementedError

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counts of sessions, events and projected messages, and the backend."""
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None:
        """Release connections. The store cannot be used afterwards."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async twins ---------------------------------------------------------------------
    async def aappend(self, key: KeyLike, events: Sequence[Event], *,
                      expected_version: int | None = None,
                      event_ids: Sequence[str] | None = None,
                      meta: dict[str, Any] | None = None) -> AppendResult:
        """``append`` without blocking the event loop."""
        return await asyncio.to_thread(self.append, key, events, expected_version=expected_version,
                                       event_ids=event_ids, meta=meta)

    async def aread(self, key: KeyLike, *, after_version: int = 0,
                    until_version: int | None = None,
                    until_time: datetime | None = None) -> list[Record]:
        """``read`` without blocking the event loop."""
        return await asyncio.to_thread(self.read, key, after_version=after_version,
                                       until_version=until_version, until_time=until_time)

    async def aload_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        """``load_history`` without blocking the event loop."""
        return await asyncio.to_thread(self.load_history, key)

    async def aload_history_at(self, key: KeyLike, *, version: int | None = None,
                               time: datetime | None = None) -> tuple[int, list[Message]]:
        """``load_history_at`` without blocking the event loop."""
        return await asyncio.to_thread(self.load_history_at, key, version=version, time=time)
