"""The append, defined once for every backend: validation, encoding, versions, the
``recorded_at`` clamp, digests and chain links.

A backend reads the stream's head and the next position under its own lock, calls ``stamp``
and writes the rows it returns; the PostgreSQL one-call fast path restates ``stamp`` in
PL/pgSQL, and a test holds the two to the same rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._errors import (
    ChatledgerError,
    DuplicateEventError,
    InvalidInputError,
    NotFoundError,
)
from chatledger.eventstore._events import Event, MessageAppended, MessageRedacted, SessionTagged
from chatledger.eventstore._keys import MAX_VALUE_LENGTH, SessionKey, has_control
from chatledger.eventstore._log import logging_enabled
from chatledger.eventstore._messages import AIMessageChunk, AnyMessage, Message
from chatledger.eventstore._store import AppendResult, ErasedEvent

__all__ = [
    "ERASABLE_TYPES",
    "EventRow",
    "Prepared",
    "Stamped",
    "duplicate_result",
    "erase_targets",
    "erased_events",
    "forks_of",
    "logged_append",
    "normalise_message",
    "prepare",
    "stamp",
    "validate_events",
]

# Every event that can hold conversation content: a model call keeps its rendered prompt.
ERASABLE_TYPES = ("message_appended", "session_forked", "run_recorded", "run_recorded_v2",
                  "model_called", "checkpoint_saved", "checkpoint_writes_saved")


class Prepared(msgspec.Struct):
    """An event ready to store: encoded once, digested once."""

    event: Event
    type: str
    data: str
    payload_digest: str
    event_id: str
    salt: str


EventRow = tuple[str, int, int, str, str, str, str, str, str, str, str, str]
"""An ``events`` row: stream_id, version, position, event_id, type, recorded_at, data, meta,
payload_digest, digest, chain, salt."""


class Stamped(NamedTuple):
    """An append's rows and the stream's head after it."""

    rows: list[EventRow]
    version: int
    chain: str
    recorded_at: str
    positions: list[int]


def stamp(
    stream_id: str, prepared: Sequence[Prepared], meta_text: str, *, version: int, chain: str,
    first_position: int, now: str, updated_at: str | None,
) -> Stamped:
    """The stored rows of one append to a stream whose head is ``version`` / ``chain``.

    Versions follow the head without a gap and positions follow ``first_position``. Every
    event of an append shares one ``recorded_at``: ``now``, unless the stream's last append
    (``updated_at``) is later, because a stream's times never decrease whatever the clock does.
    ``digest`` covers every envelope field and the payload digest; ``chain`` links it to the
    stream's previous event.
    """
    if updated_at is not None and now < updated_at:
        now = updated_at
    rows: list[EventRow] = []
    positions = []
    for i, p in enumerate(prepared):
        v = version + 1 + i
        pos = first_position + i
        digest = _codec.digest_of(pos, stream_id, v, p.event_id, p.type, now, p.payload_digest,
                                  meta_text)
        chain = _codec.chain_of(chain, digest)
        rows.append((stream_id, v, pos, p.event_id, p.type, now, p.data, meta_text,
                     p.payload_digest, digest, chain, p.salt))
        positions.append(pos)
    return Stamped(rows, version + len(prepared), chain, now, positions)


def duplicate_result(sid: str, prepared: Sequence[Prepared],
                     rows: Sequence[Sequence[Any]]) -> AppendResult | None:
    """The original result when the given event ids are stored already, else None.

    ``rows`` are the stored events with those ids: (event_id, stream_id, version, position,
    payload_digest, salt). A retry draws a new salt, so its payload is compared under the
    stored salt.

    Raises:
        DuplicateEventError: Some ids are stored, but not as this same append.
    """
    if not rows:
        return None
    stored = {r[0]: r for r in rows}
    same = (
        len(rows) == len(prepared)
        and all(stored[p.event_id][1] == sid for p in prepared)
        and all(stored[p.event_id][4] == _codec.payload_digest(p.data.encode(),
                                                               stored[p.event_id][5])
                for p in prepared)
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
        stored: ``(version, type, already_erased, ...)`` for every event of the stream.
        versions: The versions asked for; None means every event that holds content.

    Raises:
        NotFoundError: A version the stream does not have.
        InvalidInputError: ``versions`` is not a list of ints, or names a version whose event
            holds no content (a clear, a redaction...).
    """
    by_version = {v: (t, bool(erased)) for v, t, erased, *_ in stored}
    if versions is None:
        return [v for v, (t, erased) in sorted(by_version.items())
                if t in ERASABLE_TYPES and not erased]
    if isinstance(versions, (str, bytes)) or not isinstance(versions, Iterable) or any(
            not isinstance(v, int) or isinstance(v, bool) for v in versions):
        raise InvalidInputError(f"versions must be a list of ints, e.g. [2, 3], got {versions!r}")
    targets = []
    for v in sorted(set(versions)):
        if not 1 <= v <= head:
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


def erased_events(stream_id: str, stored: Sequence[Sequence[Any]],
                  targets: Sequence[int]) -> list[ErasedEvent]:
    """What an erasure of ``targets`` keeps of each event; ``stored`` rows are (version, type,
    already_erased, position, payload_digest)."""
    by_version = {r[0]: r for r in stored}
    return [ErasedEvent(stream_id=stream_id, version=v, position=by_version[v][3],
                        payload_digest=by_version[v][4]) for v in targets]


def forks_of(stream_id: str, rows: Sequence[Sequence[Any]]) -> list[tuple[str, int, int]]:
    """(stream_id, version, parent_version) of the ``SessionForked`` events among ``rows``
    (stream_id, version, data) whose parent is ``stream_id``."""
    found = []
    for sid, version, data in rows:
        try:
            event = _codec.decode_json(data)
            parent = SessionKey(**event["parent"]).stream_id
            parent_version = int(event["parent_version"])
        except (msgspec.DecodeError, ChatledgerError, KeyError, TypeError, ValueError):
            continue  # an altered payload: verify reports it; there is nothing to follow
        if parent == stream_id:
            found.append((sid, int(version), parent_version))
    return found


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
        InvalidInputError: An item is not an event, an id is not a UUID or repeats another,
            the counts differ, or there are more events than ``limit``.
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
    meta_text = _codec.encode_meta(meta or {})
    fresh = _codec.new_ids_and_salts(len(events))
    out = []
    for i, event in enumerate(events):
        if isinstance(event, MessageAppended):
            if isinstance(event.message, AIMessageChunk):
                event = MessageAppended(message=normalise_message(event.message))
        elif isinstance(event, SessionTagged):
            _check_tags(event)
        elif isinstance(event, MessageRedacted) and not erasing:
            # A redaction without its erasure would hide a message whose payload is still
            # stored; only erase() writes both together.
            raise InvalidInputError("MessageRedacted is written by erase(), not by append()")
        data = _codec.encode_event(event)
        eid, salt = fresh[i]
        if event_ids is not None:
            try:
                eid = str(uuid.UUID(str(event_ids[i])))
            except ValueError as e:
                raise InvalidInputError(f"event id {event_ids[i]!r} is not a UUID") from e
        out.append(Prepared(event, _tag(event), data.decode(), _codec.payload_digest(data, salt),
                            eid, salt))
    if event_ids is not None:
        seen: set[str] = set()
        for p in out:
            if p.event_id in seen:
                raise InvalidInputError(f"event_ids repeat {p.event_id}: give each event of an "
                                        "append its own id")
            seen.add(p.event_id)
    return out, meta_text


def _check_tags(event: SessionTagged) -> None:
    """Tags follow a key part value's rules: text, not empty, no control characters, at most
    ``MAX_VALUE_LENGTH`` characters (tables and filters show them as they are).

    Raises:
        InvalidInputError: A tag breaks a rule; the error names it.
    """
    for tag in (*event.added, *event.removed):
        shown = repr(tag) if len(repr(tag)) <= 60 else repr(tag)[:57] + "..."
        if not isinstance(tag, str) or not tag:
            raise InvalidInputError(f"tag {shown} must be a non-empty string")
        if len(tag) > MAX_VALUE_LENGTH:
            raise InvalidInputError(f"tag {shown} is {len(tag)} characters long; the limit is "
                                    f"{MAX_VALUE_LENGTH}")
        if has_control(tag):
            raise InvalidInputError(f"tag {shown} contains a control character")


def validate_events(events: Sequence[Event], meta: dict[str, Any] | None = None) -> None:
    """Check events (and meta) exactly as ``append`` would, writing nothing: for tools that
    must check every input before they write any of it.

    Raises:
        InvalidInputError: What ``append`` would refuse, named.
    """
    prepare(events, None, meta)


def logged_append(logger: Any, result: AppendResult, started: float) -> AppendResult:
    """Log an append at debug (stream, versions, count, duration) and return it."""
    if logging_enabled():
        logger.debug("append", stream_id=result.stream_id, from_version=result.first_version,
                     to_version=result.version, count=len(result.positions),
                     duplicate=result.duplicate,
                     duration_ms=round((time.perf_counter() - started) * 1000, 3))
    return result
