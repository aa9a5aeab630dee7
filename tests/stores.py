"""Stores of every backend for the tests: one per test (a fixture) or one per Hypothesis
example (``fresh_store``), so the contract and the properties run on all of them."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import EventStore, open_store
from tests.pgsupport import drop_postgres_schemas, postgres_empty_schema_url, postgres_test_schema

__all__ = ["BACKENDS", "fresh_store", "make_store"]

BACKENDS = ["sqlite-file", "sqlite-memory", pytest.param("postgres", marks=pytest.mark.postgres)]


def make_store(kind: str, tmp_path: Path, **options: object) -> EventStore:
    """Open a fresh, empty store of the given backend kind (files and schemas under tmp_path's
    name, so reopening within one test finds the same data). Nothing is created before the
    first append: a new SQLite path, or an existing empty PostgreSQL schema."""
    if kind == "sqlite-file":
        return open_store(f"sqlite:///{tmp_path / 'log.db'}", **options)  # type: ignore[arg-type]
    if kind == "sqlite-memory":
        return open_store("sqlite://:memory:", **options)  # type: ignore[arg-type]
    if kind == "postgres":
        url = postgres_empty_schema_url(postgres_test_schema(tmp_path))
        return open_store(url, **options)  # type: ignore[arg-type]
    raise ValueError(kind)


@contextlib.contextmanager
def fresh_store(kind: str) -> Iterator[EventStore]:
    """A new, empty store for one Hypothesis example, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="chatledger-example-"))
    store = make_store(kind, folder)
    try:
        yield store
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
        if kind == "postgres":
            drop_postgres_schemas()
