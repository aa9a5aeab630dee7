"""Fixtures for the command-line tests: a populated database file, its URL, the open store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import populate

from eventstore import EventStore, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The path of a populated database file."""
    path = tmp_path / "ledger.db"
    with open_store(f"sqlite:///{path}") as store:
        populate(store)
    return path


@pytest.fixture
def db(db_path: Path) -> str:
    """The URL of a populated database."""
    return f"sqlite:///{db_path}"


@pytest.fixture
def store(db: str) -> Iterator[EventStore]:
    """The populated database, opened."""
    s = open_store(db)
    yield s
    s.close()


@pytest.fixture
def postgres_db(tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh schema on the test PostgreSQL server, dropped afterwards."""
    import hashlib
    import os

    psycopg = pytest.importorskip("psycopg")
    base = os.environ.get("CHATLEDGER_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(base, connect_timeout=5).close()
    except psycopg.Error as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {base} is unreachable: {e}")
        pytest.skip(f"PostgreSQL at {base} is unreachable: {e}")
    schema = "chatledger_cli_" + hashlib.sha1(f"{os.getpid()}:{tmp_path}".encode()).hexdigest()[:12]
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
