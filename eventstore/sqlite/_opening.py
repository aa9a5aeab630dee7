"""Opening a SQLite ledger without writing to it, and the one place a ledger is created.

Opening reads the schema version and nothing else: a file that is not a ledger (empty, or
holding other tables) is refused untouched; a read-only open uses ``mode=ro``, plus
``immutable=1`` when the file or its folder cannot be written (so no ``-shm`` is needed and
no lock is taken). A ledger is created only on request: the store's first append, or
``create=True``. It is built under a temporary name and linked into place whole, so no other
process ever finds a half-made file at the path.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote

from chatledger.eventstore._errors import StoreError
from chatledger.eventstore.sqlite import _sql as SQL

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Opened",
    "create_file",
    "create_schema",
    "describe",
    "empty_ledger",
    "open_file",
    "open_memory",
    "rollback",
    "sqlite_path",
]

BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 4096


class Opened(NamedTuple):
    """An open ledger: its connection, and whether it can only be read."""

    conn: sqlite3.Connection
    readonly: bool


def sqlite_path(url: str) -> str:
    """The file path (or ``:memory:``) a SQLite URL points at.

    Raises:
        StoreError: The URL has no path, or a query (``?mode=ro`` would otherwise become part
            of a new file's name).
    """
    if "://" not in url:
        path = url
    else:
        rest = url.split("://", 1)[1]
        path = rest[1:] if rest.startswith("/") else rest
        if "?" in path:
            raise StoreError(f"SQLite URL {url!r} has a query ({path[path.index('?'):]!r}); "
                             "SQLite URLs take none: pass open_store(url, readonly=True, "
                             "durability=...) instead")
    if not path:
        raise StoreError(f"SQLite URL {url!r} names no file: use sqlite:///path.db")
    return path


def describe(e: sqlite3.Error) -> str:
    """The driver's message, with the cause named for the errors a user can fix."""
    code = getattr(e, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return f"the disk is full ({e}); free space and retry"
    if code is not None and code & 0xFF == sqlite3.SQLITE_READONLY:
        return f"the database is read-only ({e}): a read-only file, folder or medium"
    if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
        return f"an I/O error ({e}): the disk may be full or failing"
    return str(e)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is still open; the error being raised is the caller's."""
    # After SQLITE_FULL or an I/O error SQLite may already have rolled the transaction back;
    # a second ROLLBACK would raise "no transaction is active" and hide the real cause.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute(SQL.ROLLBACK)


def _connect(path: str, target: str, *, uri: bool = False) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000, uri=uri)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as e:
        raise StoreError(f"cannot open SQLite database {path!r}: {describe(e)}") from e
    return conn


def _ro_uri(path: str, *, immutable: bool) -> str:
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    return uri + "&immutable=1" if immutable else uri


def _schema_version(conn: sqlite3.Connection, path: str) -> int | None:
    """The file's schema version, None when it holds nothing at all; reads only.

    Raises:
        StoreError: The file holds tables that are not chatledger's, or another schema version.
    """
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if not conn.execute(SQL.HAS_TABLE, ("chatledger_meta",)).fetchone():
        if tables or conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            hint = ("; its LangChain messages can be imported: `chatledger import "
                    "langchain-sqlite PATH`" if "message_store" in tables else "")
            raise StoreError(f"{path!r} is not a chatledger database (it holds tables "
                             f"{', '.join(tables[:5]) or 'none'}); it was left untouched{hint}")
        return None
    row = conn.execute(SQL.GET_META, ("schema_version",)).fetchone()
    try:
        version = int(row[0]) if row else 0
    except (TypeError, ValueError):
        raise StoreError(f"{path!r} has a damaged schema version ({row[0]!r} in "
                         "chatledger_meta); it was left untouched") from None
    if version > SQL.SCHEMA_VERSION:
        raise StoreError(f"{path!r} has schema version {version}; this chatledger knows up to "
                         f"{SQL.SCHEMA_VERSION}: upgrade chatledger")
    return version


def _tune(conn: sqlite3.Connection, durability: str) -> None:
    """Connection settings of a writer; none of them writes to the file."""
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    # Erased payloads must not linger in freed pages.
    conn.execute("PRAGMA secure_delete = ON")


def create_schema(conn: sqlite3.Connection, path: str, durability: str, *,
                  applied: int = 0) -> None:
    """Create the tables in an empty database (the one place a ledger is made), or bring a
    ledger at schema version ``applied`` up to date: the migrations above it (version 1 to
    2: ``SQL.MIGRATE_TO_2``), then the schema's ``IF NOT EXISTS`` statements.

    Raises:
        StoreError: WAL mode cannot be set.
        sqlite3.Error: The database refused.
    """
    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        # Settable only before the first table; 4 KiB keeps typical messages (up to ~1 KB)
        # inside their b-tree pages instead of overflow pages.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    if path != ":memory:":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path!r}: cannot switch to WAL mode (got {mode})")
    _tune(conn, durability)
    conn.execute(SQL.BEGIN_WRITE)
    try:
        if applied == 1:
            for statement in SQL.statements(SQL.MIGRATE_TO_2):
                conn.execute(statement)
        for statement in SQL.statements(SQL.SCHEMA):
            conn.execute(statement)
        conn.execute(SQL.SET_META, ("schema_version", str(SQL.SCHEMA_VERSION)))
        conn.execute(SQL.COMMIT)
    except BaseException:
        rollback(conn)
        raise


def _guarded(conn: sqlite3.Connection, path: str, step: str, fn: Callable[[], object]) -> None:
    """Run one step of opening; on failure close ``conn`` and wrap a driver error."""
    try:
        fn()
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.Error):
            raise StoreError(f"cannot {step} {path!r} as a chatledger database: "
                             f"{describe(e)}") from e
        raise


def open_memory(durability: str) -> Opened:
    """A new in-memory ledger."""
    conn = _connect(":memory:", ":memory:")
    _guarded(conn, ":memory:", "create", lambda: create_schema(conn, ":memory:", durability))
    return Opened(conn, False)


def open_file(path: str, *, readonly: bool, create: bool, durability: str) -> Opened:
    """Open the existing file at ``path`` as a ledger, writing nothing unless ``create``.

    A file or folder this process cannot write opens read-only (immutable), whatever
    ``readonly`` says; ``create`` turns an empty file or database into a ledger.

    Raises:
        StoreError: The file is empty or not a ledger (and not ``create``), holds another
            schema version, cannot be opened, or has a write-ahead log that a read-only
            folder keeps from being read.
    """
    if os.path.getsize(path) == 0 and not (create and not readonly):
        raise StoreError(f"{path!r} is an empty file, not a chatledger database "
                         "(`chatledger init` makes it one)")
    writable = os.access(path, os.W_OK) and \
        os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    if readonly or not writable:
        wal = f"{path}-wal"
        if not writable and os.path.exists(wal) and os.path.getsize(wal) > 0:
            # immutable=1 would ignore the log's last commits: refuse rather than lie.
            raise StoreError(f"{path!r} has a write-ahead log ({wal!r}) with commits not yet "
                             "in the file, and it cannot be read from a read-only file or "
                             "folder: copy both where they can be written, or checkpoint "
                             "the database first")
        conn = _connect(path, _ro_uri(path, immutable=not writable), uri=True)
        readonly = True
    else:
        conn = _connect(path, path)
    found: list[int | None] = []
    _guarded(conn, path, "read", lambda: found.append(_schema_version(conn, path)))
    if found[0] is None and not (create and not readonly):
        conn.close()
        raise StoreError(f"{path!r} is not a chatledger database (it has no tables); it was "
                         "left untouched (`chatledger init` makes it one)")
    if found[0] is None:
        _guarded(conn, path, "create", lambda: create_schema(conn, path, durability))
    elif found[0] < SQL.SCHEMA_VERSION:
        if readonly:
            conn.close()
            raise StoreError(f"{path!r} has schema version {found[0]}; open it for writing "
                             f"once to upgrade it to version {SQL.SCHEMA_VERSION} (`chatledger "
                             "init` does)")
        # An upgrade is a write the caller asked for by opening for writing.
        _guarded(conn, path, "upgrade", lambda: create_schema(conn, path, durability,
                                                              applied=found[0] or 0))
    elif not readonly:
        _guarded(conn, path, "use", lambda: _tune(conn, durability))
    return Opened(conn, readonly)


def create_file(path: str, durability: str) -> Opened:
    """Create the ledger file at ``path`` (or open it, if another process just made it).

    Raises:
        StoreError: The file cannot be created (the message says why), or what ``open_file``
            raises.
    """
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.creating"
        try:
            conn = _connect(path, tmp)
            _guarded(conn, path, "create", lambda: create_schema(conn, tmp, durability))
            conn.close()  # checkpoints the WAL and removes it: one whole file
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        except OSError as e:
            raise StoreError(f"cannot create SQLite database {path!r}: {e.strerror or e}; "
                             "nothing was written") from e
        finally:
            for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    return open_file(path, readonly=False, create=False, durability=durability)


def empty_ledger() -> sqlite3.Connection:
    """An empty ledger in memory: what reads see before a new path's first append."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in SQL.statements(SQL.SCHEMA):
        conn.execute(statement)
    return conn
