"""Creating and migrating the PostgreSQL schema, safely when many processes start at once.

A store that finds the schema at the current version touches no lock. Otherwise it takes a
session-level advisory lock keyed on the schema's name, so that of several processes starting
together exactly one creates the tables while the others wait and then find them made. Each
migration runs in its own transaction together with its ``chatledger_migrations`` row, so a
crash halfway leaves the schema at the previous version, never between two.
"""

from __future__ import annotations

import zlib
from typing import Any

import psycopg
from psycopg import sql

from chatledger.eventstore._errors import StoreError
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._url import PostgresTarget

__all__ = ["check", "migrate"]


def _lock_key(schema: str) -> int:
    """A signed 32-bit key for the schema's advisory lock."""
    key = zlib.crc32(schema.encode())
    return key - 2**32 if key >= 2**31 else key


def _applied(conn: psycopg.Connection[Any], where: str) -> int:
    """The schema version applied so far (0 for an empty schema).

    Raises:
        StoreError: The schema holds an ``events`` table that is not chatledger's, or was
            migrated by a newer chatledger.
    """
    has_migrations, has_events = conn.execute(SQL.SCHEMA_STATE).fetchone() or (False, False)
    if not has_migrations:
        if has_events:
            raise StoreError(f"{where} has an 'events' table that is not chatledger's; "
                             "use another schema (?schema=name)")
        return 0
    row = conn.execute(SQL.APPLIED_VERSION).fetchone()
    version = int(row[0]) if row else 0
    if version > SQL.SCHEMA_VERSION:
        raise StoreError(f"{where} has schema version {version}; this chatledger knows up to "
                         f"{SQL.SCHEMA_VERSION}: upgrade chatledger")
    return version


def _schema_name(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    if target.schema is not None:
        return target.schema
    row = conn.execute(SQL.CURRENT_SCHEMA).fetchone()
    if row is None or row[0] is None:
        raise StoreError(f"{target.redacted!r}: the search_path names no existing schema; "
                         "add ?schema=name to the URL")
    return str(row[0])


def check(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    """The schema's name, after checking that it holds a current ledger; reads only.

    Raises:
        StoreError: The schema does not exist, holds no chatledger tables (nothing is
            created), holds foreign tables, or is at another schema version.
    """
    schema = _schema_name(conn, target)
    where = f"schema {schema!r} of {target.redacted!r}"
    if not conn.execute(SQL.SCHEMA_EXISTS, (schema,)).fetchone():
        raise StoreError(f"{where} does not exist; nothing was created (check ?schema=)")
    applied = _applied(conn, where)
    if applied == 0:
        raise StoreError(f"{where} holds no chatledger ledger; nothing was created")
    if applied < SQL.SCHEMA_VERSION:
        raise StoreError(f"{where} is at schema version {applied}; open it for writing once "
                         f"to migrate it to version {SQL.SCHEMA_VERSION}")
    return schema


def migrate(conn: psycopg.Connection[Any], target: PostgresTarget) -> str:
    """Bring the schema to the current version; return the schema's name.

    Args:
        conn: An autocommit connection opened with the target's connection string.
        target: The parsed URL.

    Raises:
        StoreError: No schema to create tables in, a foreign ``events`` table, a newer
            schema version.
        psycopg.Error: The database refused (e.g. no privilege to create tables).
    """
    schema = _schema_name(conn, target)
    where = f"schema {schema!r} of {target.redacted!r}"
    if _applied(conn, where) == SQL.SCHEMA_VERSION:
        return schema
    key = (SQL.LOCK_CLASS, _lock_key(schema))
    conn.execute(SQL.ADVISORY_LOCK, key)
    try:
        if target.schema is not None and not conn.execute(SQL.SCHEMA_EXISTS,
                                                          (schema,)).fetchone():
            conn.execute(sql.SQL(SQL.CREATE_SCHEMA).format(schema=sql.Identifier(schema)))
        applied = _applied(conn, where)
        if applied == 0:
            conn.execute(SQL.MIGRATIONS_TABLE)
        for version, script in SQL.MIGRATIONS:
            if version > applied:
                with conn.transaction():
                    conn.execute(script)
                    conn.execute(SQL.RECORD_MIGRATION, (version,))
    finally:
        if not conn.closed:
            conn.execute(SQL.ADVISORY_UNLOCK, key)
    return schema
