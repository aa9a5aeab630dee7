"""Finding, creating and migrating the PostgreSQL ledger, safely when many processes start at once.

Opening reads the schema's state and writes nothing, unless asked to create (``create=True``)
or the ledger is at an older schema version (a writable open migrates it). Otherwise the ledger
is created by the store's first append (``PostgresStore._ensure_ledger``); until then reads see
an empty ledger, or, when the schema named by ``?schema=`` does not exist, ``NotFoundError``.

Creating or migrating takes a session-level advisory lock keyed on the schema's name, so that
of several processes starting together exactly one does it while the others wait and then find
it done. A new ledger (schema, tables and their version rows) is made in one transaction, so no
reader ever sees half of one; each later migration runs in its own transaction together with
its ``chatledger_migrations`` row, so a crash halfway leaves the schema at the previous
version, never between two.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from chatledger.eventstore._errors import NotFoundError, StoreError
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._plans import Plan, Query
from chatledger.eventstore.postgres._url import PostgresTarget

__all__ = ["HOW_TO_CREATE", "aread_state", "check", "describe", "migrate", "open_ledger",
           "read_state", "usable"]

HOW_TO_CREATE = ("the first append creates it, as do open_store(url, create=True) and "
                 "`chatledger init`")


def describe(schema: str, target: PostgresTarget) -> str:
    """How messages name the schema: ``schema 'x' of 'postgresql://...'``."""
    return f"schema {schema!r} of {target.redacted!r}"


def _ledger_state(schema: str, where: str) -> Plan[int | None]:
    """The schema version of the ledger in ``schema``: None when the schema does not exist,
    0 when it holds no ledger yet. Each batch is one statement, run outside any transaction.

    Raises:
        StoreError: The schema holds an ``events`` table that is not chatledger's, or was
            migrated by a newer chatledger.
    """
    (state,) = yield [Query(SQL.LEDGER_STATE, {"schema": schema}, "one")]
    exists, has_migrations, has_events = state
    if not exists:
        return None
    if not has_migrations:
        if has_events:
            raise StoreError(f"{where} has an 'events' table that is not chatledger's; "
                             "use another schema (?schema=name)")
        return 0
    (row,) = yield [Query(SQL.APPLIED_VERSION, fetch="one")]
    version = int(row[0]) if row else 0
    if version > SQL.SCHEMA_VERSION:
        raise StoreError(f"{where} has schema version {version}; this chatledger knows up to "
                         f"{SQL.SCHEMA_VERSION}: upgrade chatledger")
    return version


def read_state(conn: psycopg.Connection[Any], schema: str, where: str) -> int | None:
    """``_ledger_state`` on an autocommit connection; it reads only.

    Raises:
        StoreError: A foreign ``events`` table, a newer schema version.
        psycopg.Error: The query failed.
    """
    plan = _ledger_state(schema, where)
    batch = next(plan)
    try:
        while True:
            batch = plan.send([conn.execute(q.sql, q.params).fetchone() for q in batch])
    except StopIteration as stop:
        state: int | None = stop.value
        return state


async def aread_state(conn: psycopg.AsyncConnection[Any], schema: str,
                      where: str) -> int | None:
    """``read_state`` on an async connection."""
    plan = _ledger_state(schema, where)
    batch = next(plan)
    try:
        while True:
            batch = plan.send([await (await conn.execute(q.sql, q.params)).fetchone()
                               for q in batch])
    except StopIteration as stop:
        state: int | None = stop.value
        return state


def usable(applied: int | None, where: str) -> bool:
    """Whether a ledger at schema version ``applied`` (``ledger_state``'s answer) can be read:
    True at the current version (or an older one whose tables are the same), False when there
    is none yet (reads see an empty ledger).

    Raises:
        NotFoundError: The schema does not exist (nothing was created).
        StoreError: The ledger is at an older version (only a writable open migrates it).
    """
    if applied is None:
        raise NotFoundError(f"{where} does not exist; nothing was created (check ?schema=; "
                            f"{HOW_TO_CREATE})")
    if 0 < applied < SQL.READABLE_FROM:
        raise StoreError(f"{where} is at schema version {applied}; open it for writing once "
                         f"to migrate it to version {SQL.SCHEMA_VERSION} (`chatledger init` "
                         "does)")
    return applied >= SQL.READABLE_FROM


def _schema_name(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    if target.schema is not None:
        return target.schema
    row = conn.execute(SQL.CURRENT_SCHEMA).fetchone()
    if row is None or row[0] is None:
        raise StoreError(f"{target.redacted!r}: the search_path names no existing schema; "
                         "add ?schema=name to the URL")
    return str(row[0])


def _applied(conn: psycopg.Connection[Any], schema: str, target: PostgresTarget) -> int | None:
    return read_state(conn, schema, describe(schema, target))


def check(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    """The schema's name, after checking that it holds a current ledger; reads only.

    Raises:
        NotFoundError: The schema does not exist (nothing is created).
        StoreError: The schema holds no chatledger tables (nothing is created), holds
            foreign tables, or is at another schema version.
    """
    schema = _schema_name(conn, target)
    where = describe(schema, target)
    if not usable(_applied(conn, schema, target), where):
        raise StoreError(f"{where} holds no chatledger ledger; nothing was created "
                         f"({HOW_TO_CREATE})")
    return schema


def open_ledger(conn: psycopg.Connection[Any], target: PostgresTarget, *,
                create: bool) -> tuple[str, bool]:
    """What a writable open does: the schema's name, and whether its ledger exists now.

    Writes only when ``create`` is given (the ledger is made if missing) or the ledger is at
    an older schema version (it is migrated); a missing schema or ledger is left missing.

    Raises:
        StoreError: A foreign ``events`` table, a newer schema version.
        psycopg.Error: The database refused (e.g. no privilege to create tables).
    """
    schema = _schema_name(conn, target)
    applied = _applied(conn, schema, target)
    if applied == SQL.SCHEMA_VERSION:
        return schema, True
    if create or applied:
        return migrate(conn, target), True
    return schema, False


def migrate(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    """Create the ledger, or bring it to the current version; return the schema's name.

    Args:
        conn: An autocommit connection opened with the target's connection string.
        target: The parsed URL.

    Raises:
        StoreError: No schema to create tables in, a foreign ``events`` table, a newer
            schema version.
        psycopg.Error: The database refused (e.g. no privilege to create tables).
    """
    schema = _schema_name(conn, target)
    if _applied(conn, schema, target) == SQL.SCHEMA_VERSION:
        return schema
    key = (SQL.LOCK_CLASS, SQL.schema_key(schema))
    conn.execute(SQL.ADVISORY_LOCK, key)
    try:
        applied = _applied(conn, schema, target)  # another process may have done it meanwhile
        if not applied:
            with conn.transaction():  # a new ledger appears whole, or not at all
                if applied is None:
                    conn.execute(sql.SQL(SQL.CREATE_SCHEMA).format(
                        schema=sql.Identifier(schema)))
                conn.execute(SQL.MIGRATIONS_TABLE)
                for version, script in SQL.MIGRATIONS:
                    conn.execute(script)
                    conn.execute(SQL.RECORD_MIGRATION, (version,))
            return schema
        for version, script in SQL.MIGRATIONS:
            if version > applied:
                with conn.transaction():
                    conn.execute(script)
                    conn.execute(SQL.RECORD_MIGRATION, (version,))
    finally:
        if not conn.closed:
            conn.execute(SQL.ADVISORY_UNLOCK, key)
    return schema
