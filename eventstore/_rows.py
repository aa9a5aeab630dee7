"""Stored rows to the values the store returns, shared by the backends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._errors import ChatledgerError, StoreError
from chatledger.eventstore._events import AnyEvent, PayloadErased, Record
from chatledger.eventstore._keys import SessionKey
from chatledger.eventstore._store import SessionInfo

__all__ = ["records_of", "session_of"]


def records_of(rows: Iterable[Sequence[Any]]) -> list[Record]:
    """Stored event rows (position, stream_id, version, event_id, type, recorded_at, data,
    meta, digest, chain) as ``Record``s, decoded with the cycle collector paused.

    Raises:
        StoreError: A stored row does not decode (named by stream, version and position).
    """
    with _codec.collector_paused():
        out = []
        last_text, moment = "", datetime.min
        for position, stream_id, version, event_id, type_, recorded_at, data, meta, digest, \
                chain in rows:
            try:
                if recorded_at != last_text:  # the events of one append share one time
                    moment = _stored_time(recorded_at)
                    last_text = recorded_at
                event: AnyEvent | PayloadErased = _codec.decode_event(type_, data, version)
                meta_value = {} if meta == "{}" else _codec.decode_json(meta)
                if not isinstance(meta_value, dict):
                    raise StoreError(f"meta is {type(meta_value).__name__}, not an object")
            except (ChatledgerError, msgspec.DecodeError, RecursionError, ValueError,
                    TypeError) as e:
                raise StoreError(f"stored event of stream {stream_id!r}, version {version}, "
                                 f"position {position} is damaged: {e}") from e
            out.append(Record(position, stream_id, version, event_id, type_, moment, event,
                              meta_value, digest, chain))
        return out


def _stored_time(text: Any) -> datetime:
    moment = _codec.parse_time(text)
    if moment.tzinfo is None:
        raise ValueError(f"recorded_at {text!r} has no time zone")
    return moment


def session_of(row: Sequence[Any]) -> SessionInfo:
    """A ``streams`` row (stream_id, key, version, message_count, created_at, updated_at,
    tags) as a catalog entry."""
    stream_id, key_json, version, count, created, updated, tags = row
    try:
        return SessionInfo(
            key=SessionKey(**_codec.decode_json(key_json)), stream_id=stream_id,
            version=version, message_count=count, created_at=_codec.parse_time(created),
            last_active=_codec.parse_time(updated), tags=_codec.decode_json(tags),
        )
    except (ChatledgerError, msgspec.DecodeError, RecursionError, ValueError, TypeError) as e:
        raise StoreError(f"catalog row of stream {stream_id!r} is damaged: {e}") from e
