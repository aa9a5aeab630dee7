"""Import a LangChain ``SQLChatMessageHistory`` database (SQLite) into chatledger.

The source table (``message_store`` by default) has ``id``, ``session_id`` and ``message``
(LangChain's ``{"type", "data"}`` JSON). Each source session becomes the chatledger session
``session_id=<value>``, its messages in ``id`` order.

Running an import twice adds nothing the second time: every row gets a deterministic event id,
a UUIDv5 of (the source name, the table, the session, the row id and the message text), not of
the file's path, so a moved or copied database imports the same. Rows already imported are
skipped; rows added to the source since are appended after them. Give different source
databases that reuse session ids and row ids different ``source`` names.

The source is read twice: first every row is checked, so bad input writes nothing; then rows are
appended per session in batches (one atomic append per batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from chatledger.eventstore import (
    AnyMessage,
    ChatledgerError,
    EventStore,
    InvalidInputError,
    MessageAppended,
    NotFoundError,
    SessionKey,
    from_langchain_dict,
    validate_events,
)
from chatledger.tools._output import progress

__all__ = ["NAMESPACE", "ImportSummary", "event_id", "import_langchain_sqlite"]

NAMESPACE = uuid.UUID("6f1d8a52-3c1e-5b0a-9d57-2a3f3c0b9e41")
BATCH = 500
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ImportSummary(msgspec.Struct, frozen=True):
    """What an import did."""

    path: str
    rows: int
    sessions: int
    imported: int
    already_present: int


def event_id(source: str, table: str, session_id: str, row_id: int, message: str) -> str:
    """The deterministic event id of one source row."""
    digest = hashlib.sha256(message.encode()).hexdigest()
    name = json.dumps([source, table, session_id, row_id, digest])
    return str(uuid.uuid5(NAMESPACE, name))


def _connect(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        raise NotFoundError(f"no LangChain database at {path!r}")
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise ChatledgerError(f"cannot read {path!r} as a SQLite database: {e}") from e
    return conn


def _check_table(conn: sqlite3.Connection, path: str, table: str, column: str) -> None:
    for name, what in ((table, "table"), (column, "session column")):
        if not _IDENT.match(name):
            raise InvalidInputError(f"{what} name {name!r} is not an identifier")
    columns = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
    if not columns:
        raise NotFoundError(f"{path!r} has no table {table!r} (use --table)")
    missing = {"id", column, "message"} - columns
    if missing:
        raise InvalidInputError(f"table {table!r} in {path!r} lacks column(s) "
                                f"{', '.join(sorted(missing))}; expected id, {column}, message")


def _rows(conn: sqlite3.Connection, table: str, column: str) -> Iterator[tuple[int, str, str]]:
    cursor = conn.execute(
        f'SELECT id, "{column}", message FROM "{table}" ORDER BY "{column}", id')
    for row_id, session_id, message in cursor:
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise InvalidInputError(f"row id={row_id!r}: id is not an integer; nothing was "
                                    "imported")
        if not isinstance(session_id, str):
            raise InvalidInputError(f"row id={row_id}: {column} is {session_id!r}, not text; "
                                    "nothing was imported")
        yield row_id, session_id, message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (chatledger stores only finite numbers)")


def _parse(row_id: int, session_id: str, message: object) -> MessageAppended:
    where = f"row id={row_id} (session {session_id!r})"
    if not isinstance(message, str):
        raise InvalidInputError(f"{where}: message is not text")
    try:
        raw = json.loads(message, parse_constant=_no_constant)
        parsed: AnyMessage = from_langchain_dict(raw)  # type: ignore[assignment]
        return MessageAppended(message=parsed)
    except (ValueError, TypeError, RecursionError) as e:
        raise InvalidInputError(f"{where}: {e}; nothing was imported") from e


def import_langchain_sqlite(store: EventStore, path: str, *, table: str = "message_store",
                            session_column: str = "session_id",
                            source: str = "") -> ImportSummary:
    """Import every session of a LangChain SQLite message table into ``store``.

    Raises:
        NotFoundError: The file or the table does not exist.
        InvalidInputError: A row's message is not a LangChain message, or a bad table name;
            nothing was imported.
        ChatledgerError: The file is not a SQLite database.
    """
    conn = _connect(path)
    try:
        _check_table(conn, path, table, session_column)
        total = int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        seen: dict[str, int] = {}
        for row_id, session_id, message in _rows(conn, table, session_column):
            SessionKey(session_id=session_id)
            event = _parse(row_id, session_id, message)
            try:
                validate_events([event])
            except InvalidInputError as e:
                raise InvalidInputError(f"row id={row_id} (session {session_id!r}): {e}; "
                                        "nothing was imported") from e
            # A row repeated whole (same id, session and message) would make one event id
            # twice; found here, before anything is written.
            eid = event_id(source, table, session_id, row_id, message)
            if eid in seen:
                raise InvalidInputError(f"row id={row_id} (session {session_id!r}) appears "
                                        "twice with the same message; nothing was imported")
            seen[eid] = row_id
        return _load(store, conn, path, table, session_column, source, total)
    except sqlite3.Error as e:
        raise ChatledgerError(f"cannot read table {table!r} of {path!r}: {e}") from e
    finally:
        conn.close()


def _load(store: EventStore, conn: sqlite3.Connection, path: str, table: str, column: str,
          source: str, total: int) -> ImportSummary:
    imported = present = sessions = 0
    current: str | None = None
    known: set[str] = set()
    batch: list[tuple[str, MessageAppended]] = []

    def flush() -> None:
        nonlocal imported
        if batch and current is not None:
            store.append(SessionKey(session_id=current), [e for _, e in batch],
                         event_ids=[i for i, _ in batch])
            imported += len(batch)
        batch.clear()

    with progress(_rows(conn, table, column), length=total, label="importing") as rows:
        for row_id, session_id, message in rows:
            if session_id != current:
                flush()
                current, sessions = session_id, sessions + 1
                known = {r.event_id for r in store.read(SessionKey(session_id=session_id))}
            eid = event_id(source, table, session_id, row_id, message)
            if eid in known:
                present += 1
                continue
            batch.append((eid, _parse(row_id, session_id, message)))
            if len(batch) >= BATCH:
                flush()
        flush()
    return ImportSummary(path, total, sessions, imported, present)
