"""Reading a slice of a stream for display, events of types this version does not know included.

The store refuses to decode an event whose type tag it does not know (one written by a newer
chatledger): ``read`` raises ``StoreError`` for the whole slice. The pages show such an event
as its type tag and stored JSON instead, so a new event never breaks a page. Only the rows
``read`` refuses are read again as stored, straight from the database (a read-only SQLite
connection, or a read-only PostgreSQL session); a row that is damaged (its JSON does not
parse, or a known type does not decode) still ends the page with the store's error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, get_args

from chatledger.eventstore import AnyEvent, Record, SessionKey, StoreError

__all__ = ["StreamReader", "read_shown"]

_COLUMNS = "position, stream_id, version, event_id, type, recorded_at, data, meta, digest, chain"

# Every type tag this version decodes: a row of any other type is a newer event, not damage.
_KNOWN = frozenset(tag for cls in get_args(AnyEvent)
                   if isinstance(tag := getattr(cls.__struct_config__, "tag", None), str))


class StreamReader(Protocol):
    """The store method the slice is read through."""

    def read(self, key: SessionKey, *, after_version: int = 0,
             until_version: int | None = None) -> list[Record]: ...


def read_shown(store: StreamReader, key: SessionKey, *, after_version: int,
               until_version: int) -> list[Record]:
    """The events of ``key`` after ``after_version`` up to ``until_version``, as ``read``
    gives them; an event of a type this version does not know has its stored JSON object
    (with its ``type`` tag) as ``event``.

    Raises:
        StoreError: A row is damaged, or the store cannot be read.
    """
    try:
        return store.read(key, after_version=after_version, until_version=until_version)
    except StoreError:
        rows = _stored_rows(store, key, after_version, until_version)
        if rows is None:
            raise
    records: list[Record] = []
    for row in rows:
        version = int(row[2])
        try:
            records.extend(store.read(key, after_version=version - 1, until_version=version))
        except StoreError as error:
            records.append(_as_stored(row, error))
    return records


def _as_stored(row: Sequence[Any], error: StoreError) -> Record:
    """A row of an unknown type as a ``Record`` holding its stored JSON.

    Raises:
        StoreError: ``error``, when the row is damaged rather than of an unknown type.
    """
    position, stream_id, version, event_id, type_, recorded_at, data, meta, digest, chain = row
    if type_ in _KNOWN or not isinstance(data, str):
        raise error
    try:
        event = json.loads(data)
        meta_value = json.loads(meta)
        moment = (recorded_at if isinstance(recorded_at, datetime)
                  else datetime.fromisoformat(str(recorded_at)))
    except (ValueError, RecursionError):
        raise error from None
    if not isinstance(event, dict) or event.get("type") != type_ \
            or not isinstance(meta_value, dict) or moment.tzinfo is None:
        raise error
    return Record(position, stream_id, version, event_id, type_, moment,
                  event, meta_value, digest, chain)  # type: ignore[arg-type]


def _stored_rows(store: object, key: SessionKey, after: int,
                 until: int) -> list[Sequence[Any]] | None:
    """The rows of the slice as stored, or None for a store this cannot read directly."""
    params = (key.stream_id, after, until)
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:" and Path(path).exists():
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND "
                                "version > ? AND version <= ? ORDER BY version",
                                params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read the events of {key.stream_id!r} as stored: {e}") from e
        finally:
            conn.close()
    url = getattr(store, "url", None)
    if isinstance(url, str) and url.startswith(("postgresql", "postgres:")):
        return _postgres_rows(url, params)
    return None


def _postgres_rows(url: str, params: tuple[str, int, int]) -> list[Sequence[Any]]:
    import psycopg

    from chatledger.eventstore.postgres._url import parse_url

    target = parse_url(url, readonly=True)
    try:
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            return list(conn.execute(f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND "
                                     "version > %s AND version <= %s ORDER BY version",
                                     params).fetchall())
    except psycopg.Error as e:
        raise StoreError(f"cannot read the events of {params[0]!r} as stored: "
                         f"{type(e).__name__}") from None
