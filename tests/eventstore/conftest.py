"""Fixtures of the PostgreSQL test modules: a fresh schema per test, and a store on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import open_store
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import postgres_empty_schema_url, postgres_test_schema


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A URL to a fresh, empty schema (dropped after the test): no ledger until the first
    append."""
    return postgres_empty_schema_url(postgres_test_schema(tmp_path))


@pytest.fixture
def pg(url: str) -> Iterator[PostgresStore]:
    """An open PostgreSQL store on ``url``."""
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()
