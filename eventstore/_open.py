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
        return SQLiteStore(url, durability=durability, projections=projections)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # Imported on first use: psycopg is an extra, and slow to import for SQLite users.
        try:
            from chatledger.eventstore.postgres import PostgresStore
        except ImportError as e:
            raise StoreError("PostgreSQL URLs need psycopg: pip install 'chatledger[postgres]' "
                             f"({e})") from e
        return PostgresStore(url, durability=durability, projections=projections)
    raise StoreError(
        f"unknown database URL {redact_url(url)!r}: use sqlite:///path.db, sqlite://:memory: "
        "or postgresql://..."
    )
