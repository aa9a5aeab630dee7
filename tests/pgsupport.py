"""The test PostgreSQL server: its URL, and one schema per test, dropped afterwards.

A plain module (not conftest) so test modules in every folder import the same state.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from chatledger.eventstore import redact_url

# Each test gets its own schema (named after its tmp_path, so reopening within one test finds
# the same data, as a SQLite file would), dropped when the test ends. Without a server the
# PostgreSQL tests skip, except under CI=true, where they fail.
POSTGRES_URL = os.environ.get("CHATLEDGER_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
_postgres_state: dict[str, str | None] = {}
_postgres_schemas: list[str] = []


def postgres_url() -> str:
    """The test server's URL; skips the test (fails it under CI=true) when it is unreachable."""
    if "error" not in _postgres_state:
        import psycopg

        try:
            psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
            _postgres_state["error"] = None
        except psycopg.Error as e:
            _postgres_state["error"] = str(e).strip().splitlines()[0]
    error = _postgres_state["error"]
    if error is not None:
        message = f"PostgreSQL at {redact_url(POSTGRES_URL)} is unreachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


def postgres_schema_url(name: str) -> str:
    """The test server's URL with ``?schema=name``; the schema is dropped after the test."""
    base = postgres_url()
    if name not in _postgres_schemas:
        _postgres_schemas.append(name)
    return f"{base}{'&' if '?' in base else '?'}schema={name}"


def postgres_empty_schema_url(name: str) -> str:
    """``postgres_schema_url`` of a schema created now, empty (dropped after the test).

    What a new path is to SQLite: opening it writes nothing, reads see an empty ledger, and the
    first append creates the tables. (A schema that does not exist is another case: reads say
    so.)
    """
    url = postgres_schema_url(name)
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
    return url


def postgres_test_schema(tmp_path: Path) -> str:
    """A schema name unique to this test (and this run)."""
    digest = hashlib.sha1(f"{os.getpid()}:{tmp_path}".encode()).hexdigest()[:16]
    return f"chatledger_test_{digest}"


def drop_postgres_schemas() -> None:
    """Drop the schemas the current test created."""
    if not _postgres_schemas:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        while _postgres_schemas:
            name = _postgres_schemas.pop()
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def at_once(work: Callable[[int], object], n: int, *, timeout: float = 60) -> list[BaseException]:
    """Run ``work(0)`` .. ``work(n - 1)`` in ``n`` threads released together; return what
    they raised (an empty list when every call succeeded)."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(10)
            work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors
