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

    A ledger that does not exist yet (a new SQLite path, a PostgreSQL schema without
    chatledger's tables) is created by the first append, or at once with ``create=True``;
    until then reads see an empty ledger. A PostgreSQL schema named by ``?schema=`` that does
    not exist is created the same way, and reads say it does not exist (a typo in ``?schema=``
    never makes a new empty store). A file that is not a chatledger ledger (empty, or holding
    other tables), or a schema with a foreign ``events`` table, is refused and left untouched.
    The one write an open makes is to upgrade a ledger of an older schema version, and only
    when opened for writing.

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
            every write raises ``StoreError``. A missing SQLite file or PostgreSQL schema is a
            ``NotFoundError``; a SQLite file or PostgreSQL schema holding no ledger, a
            ``StoreError``.
        create: Make the ledger now (an empty file or schema becomes one, a missing
            PostgreSQL schema is created), as ``chatledger init`` does.

    Raises:
        StoreError: Unknown scheme, a database that cannot be opened, or one that is not a
            chatledger ledger.
        NotFoundError: ``readonly`` and there is no such SQLite file or PostgreSQL schema.
        InvalidInputError: ``readonly`` and ``create`` together, or an unknown durability.
    """
    url = url or default_url()
    if durability not in ("full", "fast"):
        raise InvalidInputError(f"durability must be 'full' or 'fast', got {durability!r}")
    if readonly and create:
        raise InvalidInputError("readonly=True and create=True exclude each other")
    if backend_of(url) == "sqlite":
        return SQLiteStore(url, durability=durability, projections=projections,
                           readonly=readonly, create=create)
    # PostgreSQL: imported on first use (psycopg is an extra, and slow to import for SQLite
    # users).
    try:
        from chatledger.eventstore.postgres import PostgresStore
    except ImportError as e:
        if not (e.name or "").startswith("psycopg"):
            raise  # a broken installation of chatledger itself, not a missing extra
        raise StoreError("PostgreSQL URLs need psycopg: pip install 'chatledger[postgres]' "
                         f"({e})") from e
    return PostgresStore(url, durability=durability, projections=projections,
                         readonly=readonly, create=create)


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgres"``: the backend a URL names by its scheme (a bare path is
    SQLite). Opens nothing.

    Raises:
        StoreError: An unknown scheme.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return "postgres"
    raise StoreError(
        f"unknown database URL {redact_url(url)!r}: use sqlite:///path.db, sqlite://:memory: "
        "or postgresql://..."
    )
