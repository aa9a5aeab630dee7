"""Fixtures for the web-view tests: a populated ledger on each backend, and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from chatledger.eventstore import EventStore
from chatledger.tools.serve import create_app
from tests.tools.serve.support import ReadOnly, open_ledger, populate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """A populated store (support.populate) on SQLite and on PostgreSQL."""
    store = open_ledger(str(request.param), tmp_path)
    populate(store)
    yield store
    store.close()


@pytest.fixture
def reader(ledger: EventStore) -> ReadOnly:
    """The populated store behind a wrapper that fails on any write."""
    return ReadOnly(ledger)


@pytest.fixture
def client(reader: ReadOnly) -> Iterator[TestClient]:
    """An HTTP client for the web view over the populated store."""
    with TestClient(create_app(reader)) as c:  # type: ignore[arg-type]
        yield c
