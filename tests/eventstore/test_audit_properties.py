"""Property: any single-row change to any chatledger table (an update of one column, or a
deletion) is found by ``verify()`` or by ``verify(against=head)``, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HistoryCleared,
    HumanMessage,
    LogHead,
    MessageAppended,
    SessionKey,
    SessionTagged,
    open_store,
)
from chatledger.eventstore.sqlite import SQLiteStore
from chatledger.projections import ChatHistory
from tests.pgsupport import (
    drop_postgres_schemas,
    postgres_schema_url,
    postgres_test_schema,
    postgres_url,
)

# chatledger_meta holds only the schema version: a change there is refused at open, not a
# change to the ledger.
TABLES = ["events", "streams", "stream_keys", "history", "clears", "checkpoints"]


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Path, LogHead]]:
    """A small log with every kind of row: messages, a clear, tags, a fork, an erasure."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "template.db"
        with open_store(f"sqlite:///{path}") as store:
            head = _fill(store)
        yield path, head


def _fill(store: EventStore) -> LogHead:
    """Write the template log: messages, a clear, tags, a fork, an erasure; return its head."""
    alice = SessionKey(user_id="alice", conversation_id="1")
    store.append(alice, [MessageAppended(message=HumanMessage("hi")),
                         MessageAppended(message=AIMessage("hello"))])
    store.append(alice, [HistoryCleared(), SessionTagged(added=["vip", "beta"])])
    store.append(alice, [MessageAppended(message=HumanMessage("again"))])
    ChatHistory(alice, store).fork(SessionKey(user_id="alice", conversation_id="2"))
    store.append("bob", [MessageAppended(message=HumanMessage("secret")),
                         MessageAppended(message=HumanMessage("kept"))])
    store.erase("bob", versions=[1])
    store.append("bob", [MessageAppended(message=AIMessage("last"))])
    assert store.verify().ok
    deadline = time.monotonic() + 30  # PostgreSQL: wait out another client's open transaction
    head = store.head()
    while head.size < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
        head = store.head()
    assert head.size == 10
    return head


def _rows(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = conn.execute(f"SELECT * FROM {table}")
    return [d[0] for d in cur.description], cur.fetchall()


def _changed(value: Any, data: st.DataObject) -> Any:
    if value is None:
        return "x"
    if isinstance(value, int):
        return value + data.draw(st.sampled_from([-1, 1]), label="delta")
    text = str(value)
    if not text:
        return "x"
    i = data.draw(st.integers(0, len(text) - 1), label="char")
    return text[:i] + ("b" if text[i] == "a" else "a") + text[i + 1:]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_row_change_is_found(template: tuple[Path, LogHead],
                                        data: st.DataObject) -> None:
    """Update one column of one row, or delete one row, of any table: verify() or
    verify(against=head) reports a problem."""
    source, head = template
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "log.db"
        shutil.copy(source, path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        table = data.draw(st.sampled_from(TABLES), label="table")
        columns, rows = _rows(conn, table)
        row = data.draw(st.sampled_from(rows), label="row")
        where = " AND ".join(f"{c} IS ?" for c in columns)
        if data.draw(st.booleans(), label="delete"):
            conn.execute(f"DELETE FROM {table} WHERE {where}", row)
        else:
            i = data.draw(st.integers(0, len(columns) - 1), label="column")
            try:
                conn.execute(f"UPDATE {table} SET {columns[i]} = ? WHERE {where}",
                             (_changed(row[i], data), *row))
            except sqlite3.IntegrityError:
                assume(False)  # a key or NOT NULL constraint refused the change: nothing changed
        conn.close()
        with SQLiteStore(f"sqlite:///{path}", projections=False) as store:
            found = not store.verify().ok or not store.verify(against=head).ok
        assert found


@pytest.fixture(scope="module")
def pg_template() -> Iterator[tuple[EventStore, LogHead, psycopg.Connection[Any]]]:
    """The same log on PostgreSQL, a store on it and a superuser connection to its schema with
    the append-only trigger off."""
    postgres_url()  # skips (fails under CI=true) without the server
    with tempfile.TemporaryDirectory() as directory:
        schema = postgres_test_schema(Path(directory) / "audit-property")
        store = open_store(postgres_schema_url(schema))
        head = _fill(store)
        with psycopg.connect(postgres_url(), autocommit=True,
                             options=f"-c search_path={schema}") as conn:
            conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            yield store, head, conn
        store.close()
        drop_postgres_schemas()


@pytest.mark.postgres
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_row_change_is_found_on_postgres(
        pg_template: tuple[EventStore, LogHead, psycopg.Connection[Any]],
        data: st.DataObject) -> None:
    """The same property on PostgreSQL; each change is undone after the check."""
    store, head, conn = pg_template
    table = data.draw(st.sampled_from(TABLES[:-1]), label="table")  # no checkpoints table
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    columns = [d.name for d in cur.description or ()]
    order = ", ".join(str(i + 1) for i in range(len(columns)))
    rows = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # type: ignore[arg-type]
    row = data.draw(st.sampled_from(rows), label="row")
    where = " AND ".join(f"{c} IS NOT DISTINCT FROM %s" for c in columns)
    if data.draw(st.booleans(), label="delete"):
        conn.execute(f"DELETE FROM {table} WHERE {where}", row)  # type: ignore[arg-type]
        undo = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                f"({', '.join(['%s'] * len(columns))})", row)
    else:
        i = data.draw(st.integers(0, len(columns) - 1), label="column")
        changed = (*row[:i], _changed(row[i], data), *row[i + 1:])
        try:
            conn.execute(f"UPDATE {table} SET {columns[i]} = %s WHERE {where}",  # type: ignore[arg-type]
                         (changed[i], *row))
        except psycopg.errors.IntegrityError:
            assume(False)  # a key or NOT NULL constraint refused the change: nothing changed
        sets = ", ".join(f"{c} = %s" for c in columns)
        undo = (f"UPDATE {table} SET {sets} WHERE "
                + " AND ".join(f"{c} IS NOT DISTINCT FROM %s" for c in columns),
                (*row, *changed))
    try:
        found = not store.verify().ok or not store.verify(against=head).ok
    finally:
        conn.execute(undo[0], undo[1])  # type: ignore[arg-type]
    assert found
    assert store.verify().ok
