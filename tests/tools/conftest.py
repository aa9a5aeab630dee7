"""Fixtures for the command-line tests: a populated database file, its URL, the open store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import EventStore, open_store
from tests.pgsupport import postgres_schema_url, postgres_test_schema
from tests.tools.cli_support import populate


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
    """A URL to a fresh schema on the test PostgreSQL server, dropped after the test."""
    yield postgres_schema_url(postgres_test_schema(tmp_path))
