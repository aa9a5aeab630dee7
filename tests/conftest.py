"""Shared fixtures: a store per backend, so one contract suite runs against all of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import EventStore
from tests.pgsupport import drop_postgres_schemas
from tests.stores import BACKENDS, make_store


@pytest.fixture(autouse=True)
def _postgres_cleanup() -> Iterator[None]:
    """Schemas made for a test are dropped after it (and after its fixtures closed)."""
    yield
    drop_postgres_schemas()


# -- every backend -------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[EventStore]:
    """A fresh, empty store of each backend in turn."""
    s = make_store(backend, tmp_path)
    yield s
    s.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite URL to a new file in tmp_path."""
    return f"sqlite:///{tmp_path / 'chatledger.db'}"


@pytest.fixture(autouse=True)
def _no_ambient_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never touch ./chatledger.db or a URL from the developer's environment."""
    monkeypatch.delenv("CHATLEDGER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
