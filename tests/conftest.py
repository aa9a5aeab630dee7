"""Shared fixtures: a store per backend, so one contract suite runs against all of them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventStore, open_store, redact_url

BACKENDS = ["sqlite-file", "sqlite-memory", pytest.param("postgres", marks=pytest.mark.postgres)]

# -- PostgreSQL ----------------------------------------------------------------------------
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


@pytest.fixture(autouse=True)
def _postgres_cleanup() -> Iterator[None]:
    """Schemas made for a test are dropped after it (and after its fixtures closed)."""
    yield
    drop_postgres_schemas()


# -- every backend -------------------------------------------------------------------------
def make_store(kind: str, tmp_path: Path, **options: object) -> EventStore:
    """Open a fresh, empty store of the given backend kind."""
    if kind == "sqlite-file":
        return open_store(f"sqlite:///{tmp_path / 'log.db'}", **options)  # type: ignore[arg-type]
    if kind == "sqlite-memory":
        return open_store("sqlite://:memory:", **options)  # type: ignore[arg-type]
    if kind == "postgres":
        url = postgres_schema_url(postgres_test_schema(tmp_path))
        return open_store(url, **options)  # type: ignore[arg-type]
    raise ValueError(kind)


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
