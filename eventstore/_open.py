"""``open_store``: the one module that knows the backends, above all of them."""

from __future__ import annotations

import os

from chatledger.eventstore._errors import InvalidInputError, StoreError
from chatledger.eventstore._redact import redact_url
from chatledger.eventstore._store import EventStore
from chatledger.eventstore.sqlite import SQLiteStore

__all__ = ["DEFAULT_URL", "default_url", "open_store"]

DEFAULT_URL = "sqlite:///chatledger.db"


def default_url() -> str:
    """``$CHATLEDGER_URL``, else ``./chatledger.db``."""
    return os.environ.get("CHATLEDGER_URL") or DEFAULT_URL


def open_store(url: str | None = None, *, durability: str = "full",
               projections: bool = True, readonly: bool = False,
               create: bool = False) -> EventStore:
    """Open the event store at ``url``. Opening never writes.

    A SQLite file that does not exist yet is created by the first append (reads see an empty
    ledger until then), or at once with ``create=True``. A file that is not a chatledger
    ledger (empty, or holding other tables) is refused and left untouched. PostgreSQL: a
    writable open of a schema without the tables creates them (an app server opens to write);
    a read-only open never does, and names a schema that does not exist.

    Args:
        url: ``sqlite:///path.db``, ``sqlite://:memory:``, ``postgresql://...``; a bare path
            means SQLite. None uses ``$CHATLEDGER_URL``, else ``./chatledger.db``.
        durability: ``"full"`` (SQLite ``synchronous=FULL``: a committed append survives power
            loss) or ``"fast"`` (``synchronous=NORMAL``: survives a crash of the process, may
            lose the last commits on power loss).
        projections: Keep the projections up to date in each append's transaction. Only
            tests and bulk loads turn this off; the projections catch up on the next open.
        readonly: Open for reading only: SQLite ``mode=ro`` (plus ``immutable=1`` when the
            file or its folder cannot be written), no write lock taken, nothing created;
            every write raises ``StoreError``. A missing SQLite file is a ``NotFoundError``.
        create: Make the ledger now (an empty file or database becomes one), as
            ``chatledger init`` does.

    Raises:
        StoreError: Unknown scheme, a database that cannot be opened, or one that is not a
            chatledger ledger.
        NotFoundError: ``readonly`` and there is no such SQLite file.
        InvalidInputError: ``readonly`` and ``create`` together, or an unknown durability.
    """
    url = url or default_url()
    if durability not in ("full", "fast"):
        raise InvalidInputError(f"durability must be 'full' or 'fast', got {durability!r}")
    if readonly and create:
        raise InvalidInputError("readonly=True and create=True exclude each other")
    scheme, sep, _ = url.partition("://")
    if not sep or scheme == "sqlite":
        return SQLiteStore(url, durability=durability, projections=projections,
                           readonly=readonly, create=create)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # Imported on first use: psycopg is an extra, and slow to import for SQLite users.
        try:
            from chatledger.eventstore.postgres import PostgresStore
        except ImportError as e:
            if not (e.name or "").startswith("psycopg"):
                raise  # a broken installation of chatledger itself, not a missing extra
            raise StoreError("PostgreSQL URLs need psycopg: pip install 'chatledger[postgres]' "
                             f"({e})") from e
        return PostgresStore(url, durability=durability, projections=projections,
                             readonly=readonly)
    raise StoreError(
        f"unknown database URL {redact_url(url)!r}: use sqlite:///path.db, sqlite://:memory: "
        "or postgresql://..."
    )
