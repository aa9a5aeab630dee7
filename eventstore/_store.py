"""The store contract shared by every backend, and ``open_store``."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Union

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._errors import (
    DuplicateEventError,
    InvalidInputError,
    NotFoundError,
    StoreError,
)
from chatledger.eventstore._events import (
    AnyEvent,
    Event,
    HistoryCleared,
    MessageAppended,
    MessageRedacted,
    Record,
    SessionForked,
    SessionTagged,
)
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._log import logging_enabled
from chatledger.eventstore._messages import AIMessageChunk, AnyMessage, Message

__all__ = [
    "AppendResult",
    "EventStore",
    "Problem",
    "Progress",
    "SessionInfo",
    "VerifyReport",
    "logged_append",
    "merge_tags",
    "open_store",
    "projection_ops",
    "sessions_query",
    "stored_step",
]

DEFAULT_URL = "sqlite:///chatledger.db"


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
    """One broken row or link found by ``verify``."""

    stream_id: str
    version: int
    position: Union[int, None]
    kind: str  # "altered", "missing", "reordered", "erased"
    detail: str


class VerifyReport(msgspec.Struct, frozen=True):
    """The outcome of ``verify``: ``ok`` only when no problem was found."""

    streams: int
    events: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when every digest and chain link checked out."""
        return not self.problems


class Prepared(msgspec.Struct):
    """An event ready to store: encoded once, digested once."""

    event: Event
    type: str
    data: str
    payload_digest: str
    event_id: str


ERASABLE_TYPES = ("message_appended", "session_forked", "run_recorded")


def duplicate_result(sid: str, prepared: Sequence[Prepared],
                     rows: Sequence[Sequence[Any]]) -> AppendResult | None:
    """The original result when the given event ids are stored already, else None.

    ``rows`` are the stored events with those ids: (event_id, stream_id, version, position,
    payload_digest).

    Raises:
        DuplicateEventError: Some ids are stored, but not as this same append.
    """
    if not rows:
        return None
    stored = {r[0]: r for r in rows}
    same = (
        len(rows) == len(prepared)
        and all(stored[p.event_id][1] == sid for p in prepared)
        and all(stored[p.event_id][4] == p.payload_digest for p in prepared)
    )
    if not same:
        clash = ", ".join(sorted(stored))
        raise DuplicateEventError(
            f"event ids {clash} are already stored, but not as this same append to {sid!r}"
        )
    ordered = [stored[p.event_id] for p in prepared]
    return AppendResult(sid, ordered[-1][2], [r[3] for r in ordered], duplicate=True)


def erase_targets(
    stream_id: str, head: int, stored: Sequence[tuple[int, str, bool]],
    versions: Sequence[int] | None,
) -> list[int]:
    """The versions an erasure will scrub, checked against what the stream holds.

    Args:
        stream_id: The stream, for error messages.
        head: The stream's current version.
        stored: ``(version, type, already_erased)`` for every event of the stream.
        versions: The versions asked for; None means every event that holds content.

    Raises:
        NotFoundError: A version the stream does not have.
        InvalidInputError: A version whose event holds no content (a clear, a redaction...).
    """
    by_version = {v: (t, bool(erased)) for v, t, erased in stored}
    if versions is None:
        return [v for v, (t, erased) in sorted(by_version.items())
                if t in ERASABLE_TYPES and not erased]
    targets = []
    for v in sorted(set(versions)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= head:
            raise NotFoundError(f"session {stream_id!r} has no version {v!r}")
        type_, erased = by_version[v]
        if type_ not in ERASABLE_TYPES:
            raise InvalidInputError(
                f"version {v} is a {type_} event; only {', '.join(ERASABLE_TYPES)} payloads "
                "can be erased"
            )
        if not erased:
            targets.append(v)
    return targets


def _tag(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def normalise_message(message: Message) -> AnyMessage:
    """Whole messages only: a streamed chunk is stored as the message it adds up to."""
    if isinstance(message, AIMessageChunk):
        return message.to_message()
    return message  # type: ignore[return-value]


def prepare(
    events: Sequence[Event], event_ids: Sequence[str] | None, meta: dict[str, Any] | None,
    *, erasing: bool = False, limit: int | None = None,
) -> tuple[list[Prepared], str]:
    """Validate and encode one append's events and its meta.

    ``limit`` caps the events of one append (checked before anything is encoded).

    Raises:
        InvalidInputError: An item is not an event, an id is not a UUID, the counts differ,
            or there are more events than ``limit``.
    """
    if isinstance(events, (Event, Message)) or not isinstance(events, Sequence):
        raise InvalidInputError("events must be a list of events, e.g. [MessageAppended(...)]")
    if limit is not None and len(events) > limit:
        raise InvalidInputError(f"one append holds at most {limit:,} events on this store, "
                                f"got {len(events):,}: split it into several")
    if event_ids is not None and len(event_ids) != len(events):
        raise InvalidInputError(
            f"{len(event_ids)} event ids for {len(events)} events; give one id per event"
        )
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInputError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_text = _codec.encode(meta or {}).decode()
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"meta cannot be encoded as JSON: {e}") from e
    out = []
    for i, event in enumerate(events):
        if isinstance(event, MessageAppended) and isinstance(event.message, AIMessageChunk):
            event = MessageAppended(message=normalise_message(event.message))
        if isinstance(event, MessageRedacted) and not erasing:
            # A redaction without its erasure would hide a message whose payload is still
            # stored; only erase() writes both together.
            raise InvalidInputError("MessageRedacted is written by erase(), not by append()")
        data = _codec.encode_event(event)
        if event_ids is None:
            eid = _codec.new_event_id()
        else:
            try:
                eid = str(uuid.UUID(str(event_ids[i])))
            except ValueError as e:
                raise InvalidInputError(f"event id {event_ids[i]!r} is not a UUID") from e
        out.append(Prepared(event, _tag(event), data.decode(), _codec.payload_digest(data), eid))
    return out, meta_text


class ProjectionStep(msgspec.Struct):
    """What one event does to the history projection and the catalog."""

    messages: list[str]  # encoded messages it adds, in order
    clears: bool = False
    redacts: Union[int, None] = None
    tags_added: list[str] = []
    tags_removed: list[str] = []


def projection_step(event: AnyEvent | Event) -> ProjectionStep:
    """The pure fold step of the history projection, shared by every backend."""
    match event:
        case MessageAppended(message=message):
            return ProjectionStep([_codec.encode(message).decode()])
        case SessionForked(messages=messages):
            return ProjectionStep([_codec.encode(m).decode() for m in messages])
        case HistoryCleared():
            return ProjectionStep([], clears=True)
        case MessageRedacted(version=version):
            return ProjectionStep([], redacts=version)
        case SessionTagged(added=added, removed=removed):
            return ProjectionStep([], tags_added=added, tags_removed=removed)
        case _:
            return ProjectionStep([])


HistoryRow = tuple[str, int, int, str]
"""A row of the history projection: stream_id, version, index within the event, message JSON."""


class InsertRows(msgspec.Struct, frozen=True):
    """Insert these history rows."""

    rows: list[HistoryRow]


class MarkClear(msgspec.Struct, frozen=True):
    """Record a clear at ``version``; the catalog's count restarts at zero."""

    version: int


class DropVersion(msgspec.Struct, frozen=True):
    """Delete the history rows of the event at ``version``, then recount the current history."""

    version: int


class ChangeTags(msgspec.Struct, frozen=True):
    """Add and remove catalog tags."""

    added: list[str]
    removed: list[str]


ProjectionOp = Union[InsertRows, MarkClear, DropVersion, ChangeTags]


def projection_ops(
    stream_id: str, items: Sequence[tuple[int, AnyEvent | Event | ProjectionStep]]
) -> tuple[list[ProjectionOp], int]:
    """What applying events of one stream does to the projection tables, in order.

    Each backend executes the operations with its own SQL, so the fold's semantics live here
    once. The second value is how many messages to add to the catalog's count afterwards; the
    caller folds it into its update of the stream row, so a plain append writes that row once.
    """
    ops: list[ProjectionOp] = []
    pending: list[HistoryRow] = []
    added = 0
    for version, event in items:
        step = event if isinstance(event, ProjectionStep) else projection_step(event)
        for idx, message in enumerate(step.messages):
            pending.append((stream_id, version, idx, message))
        added += len(step.messages)
        if step.clears:
            # rows of this batch before the clear are history, not current: inserted with
            # versions at or below the clear, loads skip them.
            ops.append(MarkClear(version))
            added = 0
        if step.redacts is not None:
            if pending:
                ops.append(InsertRows(pending))
                pending = []
            ops.append(DropVersion(step.redacts))
            added = 0  # the recount after the drop includes everything inserted so far
        if step.tags_added or step.tags_removed:
            ops.append(ChangeTags(step.tags_added, step.tags_removed))
    if pending:
        ops.append(InsertRows(pending))
    return ops, added


def merge_tags(stored: str, change: ChangeTags) -> str:
    """The catalog's tags column (a sorted JSON list) after ``change``."""
    tags = set(_codec.decode_json(stored)) | set(change.added)
    return _codec.encode(sorted(tags - set(change.removed))).decode()


_APPENDED_PREFIX = '{"type":"message_appended","message":'
_NO_STEP = ProjectionStep([])


def stored_step(type_: str, data: str | None) -> ProjectionStep:
    """``projection_step`` of a stored event, without decoding what the fold does not need.

    A stored ``MessageAppended`` is its tag followed by the message exactly as ``encode`` wrote
    it, so the message's JSON is a slice of the payload; a replay then neither decodes nor
    re-encodes messages. Anything else (an upcast tag, an odd encoding) takes the full path.
    """
    if data is None or type_ == "run_recorded":
        return _NO_STEP
    if type_ == "message_appended" and data.startswith(_APPENDED_PREFIX) and data[-1] == "}":
        return ProjectionStep([data[len(_APPENDED_PREFIX):-1]])
    return projection_step(_codec.decode_event(type_, data))


def logged_append(logger: Any, result: AppendResult, started: float) -> AppendResult:
    """Log an append at debug (stream, versions, count, duration) and return it."""
    if logging_enabled():
        logger.debug("append", stream_id=result.stream_id, from_version=result.first_version,
                     to_version=result.version, count=len(result.positions),
                     duplicate=result.duplicate,
                     duration_ms=round((time.perf_counter() - started) * 1000, 3))
    return result


def sessions_query(
    template: str, key_filter: dict[str, str], after: str | None, limit: int, *,
    true: str, part_filter: str, after_filter: str,
) -> tuple[str, tuple[Any, ...]]:
    """The catalog query for ``sessions()``: one ``part_filter`` per key part, then the cursor.

    The SQL pieces come from the backend's SQL module; this builds the same query shape for all.

    Raises:
        InvalidInputError: A bad limit or cursor.
        InvalidKeyError: A bad key part in the filter.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
    filters = [true]
    params: list[Any] = []
    for name, value in sorted(key_filter.items()):
        SessionKey(**{name: value})  # validates the part, naming it on error
        filters.append(part_filter)
        params += [name, value]
    if after is not None:
        moment, sep, sid = str(after).partition("|")
        if not sep or not sid:
            raise InvalidInputError(f"bad sessions cursor {after!r}")
        filters.append(after_filter)
        params += [moment, moment, sid]
    return template.format(filters=" AND ".join(filters)), (*params, limit)


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


def check_version(value: int | None, name: str) -> None:
    """Reject versions that are not non-negative ints.

    Raises:
        InvalidInputError: ``value`` is negative or not an int.
    """
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}")


class VerifyRow(msgspec.Struct, array_like=True):
    """A raw stored row as ``verify`` checks it."""

    stream_id: str
    version: int
    position: int
    event_id: str
    type: str
    recorded_at: str
    data: Union[str, None]
    meta: str
    payload_digest: str
    digest: str
    chain: str


Progress = Callable[[int], None]
"""Called now and then with how many more events were processed (e.g. a progress bar's update)."""

PROGRESS_EVERY = 10_000


def verify_rows(
    rows: Iterable[VerifyRow], heads: dict[str, tuple[int, str]],
    progress: Progress | None = None,
) -> VerifyReport:
    """Recompute every digest and chain link; name each altered, missing or reordered row."""
    problems: list[Problem] = []
    events = 0
    seen: set[str] = set()
    stream = None
    prev_chain = _codec.GENESIS
    expected = 1
    last_position = 0
    erased: dict[int, int] = {}
    redacted: set[int] = set()

    def close(stream_id: str) -> None:
        for version, position in erased.items():
            if version not in redacted:
                problems.append(Problem(stream_id, version, position, "erased",
                                        "payload removed without a MessageRedacted event"))
        head = heads.get(stream_id)
        if head is not None and (head[0] != expected - 1 or head[1] != prev_chain):
            problems.append(Problem(stream_id, head[0], None, "missing",
                                    f"stream head is version {head[0]} but the log ends at "
                                    f"version {expected - 1} or its chain differs"))

    for row in rows:
        events += 1
        if progress is not None and events % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
        if row.stream_id != stream:
            if stream is not None:
                close(stream)
            stream, prev_chain, expected, last_position = row.stream_id, _codec.GENESIS, 1, 0
            erased, redacted = {}, set()
            seen.add(row.stream_id)
        if row.version != expected:
            problems.append(Problem(row.stream_id, expected, None, "missing",
                                    f"versions {expected}..{row.version - 1} are missing"))
        if row.data is None:
            erased[row.version] = row.position
        elif _codec.payload_digest(row.data.encode()) != row.payload_digest:
            problems.append(Problem(row.stream_id, row.version, row.position, "altered",
                                    "payload does not match its digest"))
        elif row.type == "message_redacted":
            try:
                redacted.add(int(_codec.decode_json(row.data)["version"]))
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                pass  # the digest check above already vouched for this payload
        digest = _codec.digest_of(row.position, row.stream_id, row.version, row.event_id,
                                  row.type, row.recorded_at, row.payload_digest, row.meta)
        if digest != row.digest:
            problems.append(Problem(row.stream_id, row.version, row.position, "altered",
                                    "envelope does not match its digest"))
        if row.position <= last_position:
            problems.append(Problem(row.stream_id, row.version, row.position, "reordered",
                                    f"position {row.position} is not after {last_position}"))
        if _codec.chain_of(prev_chain, row.digest) != row.chain:
            problems.append(Problem(row.stream_id, row.version, row.position, "reordered",
                                    "chain link does not follow from the previous event"))
        prev_chain = row.chain
        expected = row.version + 1
        last_position = max(last_position, row.position)
    if stream is not None:
        close(stream)
    if progress is not None and events % PROGRESS_EVERY:
        progress(events % PROGRESS_EVERY)
    for stream_id, (version, _) in heads.items():
        if stream_id not in seen and version > 0:
            problems.append(Problem(stream_id, version, None, "missing",
                                    f"stream head is version {version} but no events are stored"))
    return VerifyReport(streams=len(heads), events=events, problems=problems)


class EventStore:
    """The append-only log and its projections. Open one with ``open_store``.

    Backends implement the synchronous methods; the ``a``-prefixed twins run them off the
    event loop unless a backend has native async I/O.
    """

    url: str

    # -- the log -------------------------------------------------------------------------
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
            InvalidInputError: An item is not an event, or meta is not JSON-able.
            StoreError: The database failed; nothing was written.
        """
        raise NotImplementedError

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

    def version(self, key: KeyLike) -> int:
        """The stream's current version (0 when it has no events)."""
        raise NotImplementedError

    def last_position(self) -> int:
        """The highest position handed out so far."""
        raise NotImplementedError

    def event_count(self) -> int:
        """How many events the log holds (positions need not be consecutive: PostgreSQL's
        are not, so this, not ``last_position``, sizes progress over the whole log)."""
        raise NotImplementedError

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

    def session(self, key: KeyLike) -> SessionInfo | None:
        """The catalog row of one session, or None if it has no events."""
        raise NotImplementedError

    def verify(self, key: KeyLike | None = None, *,
               progress: Progress | None = None) -> VerifyReport:
        """Recompute every digest and chain link, of one stream or of the whole log.

        Args:
            key: One session, or None for the whole log.
            progress: Called now and then with how many more events were checked.
        """
        raise NotImplementedError

    def erase(self, key: KeyLike, *, versions: Sequence[int] | None = None,
              reason: str = "erasure requested") -> AppendResult:
        """Lawfully erase payloads (all content of the session by default).

        The payloads are removed but their digests stay, and a ``MessageRedacted`` event per
        erased event records the erasure, so ``verify`` still passes.

        Raises:
            NotFoundError: A version does not exist.
        """
        raise NotImplementedError

    # -- projections ---------------------------------------------------------------------
    def load_history(self, key: KeyLike) -> tuple[int, list[Message]]:
        """The current history of one session and the stream version it reflects."""
        raise NotImplementedError

    def load_history_at(self, key: KeyLike, *, version: int | None = None,
                        time: datetime | None = None) -> tuple[int, list[Message]]:
        """The history as it stood at a version or time, and that version.

        Raises:
            InvalidInputError: Both or neither of version and time; a naive datetime.
            NotFoundError: ``version`` is beyond the stream's head.
        """
        raise NotImplementedError

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Drop the projection tables and replay the whole log; returns events replayed.

        Args:
            progress: Called after each page with how many more events were replayed.
        """
        raise NotImplementedError

    def catch_up(self) -> int:
        """Apply events the projections have not seen yet; returns how many."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Counts of sessions, events and projected messages, and the backend."""
        raise NotImplementedError

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


def default_url() -> str:
    """``$CHATLEDGER_URL``, else ``./chatledger.db``."""
    return os.environ.get("CHATLEDGER_URL") or DEFAULT_URL


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL without its password (in the userinfo or a ``password=`` parameter)."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def open_store(url: str | None = None, *, durability: str = "full",
               projections: bool = True) -> EventStore:
    """Open the event store at ``url``.

    Args:
        url: ``sqlite:///path.db``, ``sqlite://:memory:``, ``postgresql://...``; a bare path
            means SQLite. None uses ``$CHATLEDGER_URL``, else ``./chatledger.db``.
        durability: ``"full"`` (SQLite ``synchronous=FULL``: a committed append survives power
            loss) or ``"fast"`` (``synchronous=NORMAL``: survives a crash of the process, may
            lose the last commits on power loss).
        projections: Keep the projections up to date in each append's transaction. Only
            tests and bulk loads turn this off; the projections catch up on the next open.

    Raises:
        StoreError: Unknown scheme, or the database cannot be opened.
    """
    url = url or default_url()
    if durability not in ("full", "fast"):
        raise InvalidInputError(f"durability must be 'full' or 'fast', got {durability!r}")
    scheme, sep, _ = url.partition("://")
    if not sep or scheme == "sqlite":
        from chatledger.eventstore._sqlite import SQLiteStore

        return SQLiteStore(url, durability=durability, projections=projections)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        try:
            from chatledger.eventstore._postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise StoreError(f"PostgreSQL support needs psycopg: {e}") from e
        return PostgresStore(url, durability=durability, projections=projections)  # type: ignore[no-any-return,unused-ignore]
    raise StoreError(
        f"unknown database URL {redact_url(url)!r}: use sqlite:///path.db, sqlite://:memory: "
        "or postgresql://..."
    )
