"""PostgreSQL: versioned schema, append-only log, tamper evidence, durability and tailing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chatledger.eventstore import (
    ConcurrencyError,
    HumanMessage,
    InvalidInputError,
    MessageAppended,
    Record,
    SessionKey,
    StoreError,
    open_store,
)
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import (
    postgres_empty_schema_url,
    postgres_schema_url,
    postgres_test_schema,
    postgres_url,
)

pytestmark = pytest.mark.postgres

KEY = SessionKey(session_id="s")


@pytest.fixture
def schema(tmp_path: Path) -> str:
    """A fresh schema name for this test."""
    return postgres_test_schema(tmp_path)


@pytest.fixture
def url(schema: str) -> str:
    """A URL to the fresh schema, created empty."""
    return postgres_empty_schema_url(schema)


@pytest.fixture
def admin(schema: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser connection whose search_path is the test's schema."""
    with psycopg.connect(postgres_url(), autocommit=True,
                         options=f"-c search_path={schema}") as conn:
        yield conn


def _say(store: PostgresStore, text: str, key: SessionKey = KEY) -> None:
    store.append(key, [MessageAppended(message=HumanMessage(text))])


def _tables(admin: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    return {str(r[0]) for r in admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def test_schema_is_created_once_and_recorded(pg: PostgresStore, url: str,
                                             admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """Opening creates nothing; the first append records every schema version in
    chatledger_migrations; reopening and appending again change nothing."""
    assert _tables(admin) == set()
    _say(pg, "first")
    open_store(url).close()
    _say(pg, "second")
    rows = admin.execute("SELECT version, applied_at IS NOT NULL FROM chatledger_migrations"
                         ).fetchall()
    assert rows == [(1, True), (2, True), (3, True), (4, True)]
    assert _tables(admin) == {"chatledger_migrations", "events", "streams", "stream_keys", "history",
                      "clears"}


def test_newer_schema_version_is_refused(pg: PostgresStore, url: str,
                                         admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A schema migrated by a newer chatledger raises StoreError asking for an upgrade."""
    _say(pg, "first")
    admin.execute("INSERT INTO chatledger_migrations (version) VALUES (99)")
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade chatledger"):
        open_store(url)


def test_foreign_events_table_is_refused_and_untouched(
        url: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A schema that already has someone else's 'events' table is refused at open, to read,
    write or create, and left exactly as it was."""
    admin.execute("CREATE TABLE events (id int)")
    for options in ({}, {"create": True}, {"readonly": True}):
        with pytest.raises(StoreError, match="'events' table that is not chatledger's"):
            open_store(url, **options)  # type: ignore[arg-type]
    assert [r[0] for r in admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")] == ["events"]


@pytest.mark.parametrize("statement", [
    "UPDATE events SET meta = '{}'",
    "UPDATE events SET data = '{}'",
    "DELETE FROM events",
    "TRUNCATE events",
])
def test_log_is_append_only_in_the_database(pg: PostgresStore, statement: str,
                                            admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """The database itself refuses to change or delete a stored event."""
    _say(pg, "kept")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        admin.execute(statement)
    assert pg.read(KEY)[0].event == MessageAppended(message=HumanMessage("kept"))
    assert pg.verify().ok


def test_verify_locates_an_altered_row(pg: PostgresStore,
                                       admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """An edit made behind the store's back (triggers off) is reported at its version."""
    for text in ("one", "two", "three"):
        _say(pg, text)
    admin.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    admin.execute("UPDATE events SET data = replace(data, 'two', 'TWO') WHERE version = 2")
    admin.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    report = pg.verify()
    assert not report.ok
    assert [(p.version, p.kind) for p in report.problems] == [(2, "altered")]


def test_fast_durability_turns_off_synchronous_commit(url: str) -> None:
    """durability='fast' runs this store's transactions with synchronous_commit=off."""
    for durability, expected in (("full", "on"), ("fast", "off")):
        store = open_store(url, durability=durability)
        assert isinstance(store, PostgresStore)
        try:
            with store._pool.connection() as conn:
                row = conn.execute("SHOW synchronous_commit").fetchone()
            assert row == (expected,)
            assert store.stats()["durability"] == durability
        finally:
            store.close()


def test_stats_count_sessions_events_and_messages(pg: PostgresStore, schema: str) -> None:
    """stats() reports the backend, its schema and the counts."""
    _say(pg, "a")
    _say(pg, "b", SessionKey(session_id="other"))
    stats = pg.stats()
    assert stats["backend"] == "postgresql"
    assert stats["schema"] == schema
    assert (stats["sessions"], stats["events"], stats["projected_messages"]) == (2, 2, 2)
    assert stats["bytes"] > 0


def test_subscribe_starts_after_a_position_and_follows_new_commits(pg: PostgresStore) -> None:
    """subscribe(after_position=p) yields what follows p and then what commits while it waits."""
    for i in range(3):
        _say(pg, f"old{i}")
    first = pg.read_all()[0].position
    seen: list[Record] = []
    tail = pg.subscribe(after_position=first, timeout=10)
    seen.append(next(tail))
    seen.append(next(tail))
    def write() -> None:
        for i in range(3):
            _say(pg, f"new{i}")

    writer = threading.Thread(target=write)
    writer.start()
    for record in tail:
        seen.append(record)
        if len(seen) == 5:
            break
    writer.join()
    assert [r.position for r in seen] == [r.position for r in pg.read_all(after_position=first)]
    assert [r.event.message.text for r in seen  # type: ignore[union-attr]
            ] == ["old1", "old2", "new0", "new1", "new2"]


def test_subscribe_ignores_other_schemas_and_times_out(
        pg: PostgresStore, tmp_path: Path) -> None:
    """Commits in another schema do not feed this tail; it ends after the idle timeout."""
    other_url = postgres_schema_url(postgres_test_schema(tmp_path / "other"))
    with open_store(other_url) as other:
        _say(pg, "mine")
        tail = pg.subscribe(timeout=0.5)
        assert next(tail).position == pg.last_position()
        for i in range(3):
            other.append("x", [MessageAppended(message=HumanMessage(f"theirs{i}"))])
        assert list(tail) == []


def test_subscribe_rejects_bad_arguments(pg: PostgresStore) -> None:
    """A negative position or timeout raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match="after_position"):
        pg.subscribe(after_position=-1)
    with pytest.raises(InvalidInputError, match="timeout"):
        pg.subscribe(timeout=-1)
    with pytest.raises(InvalidInputError, match="timeout"):
        pg.asubscribe(timeout=True)


def test_unique_stream_version_backstops_a_foreign_writer(
        pg: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A row slipped in at the next version turns the append into ConcurrencyError, writing nothing."""
    _say(pg, "first")
    admin.execute(
        "INSERT INTO events (position, stream_id, version, event_id, type, recorded_at, data,"
        " meta, payload_digest, digest, chain) VALUES (1000, %s, 2, %s, 'message_appended',"
        " '2026-01-01T00:00:00.000000Z', NULL, '{}', '', '', '')",
        (KEY.stream_id, str(uuid.uuid4())))
    before = pg.last_position()
    with pytest.raises(ConcurrencyError):
        _say(pg, "second")
    assert pg.last_position() == before
    assert pg.load_history(KEY) == (1, [HumanMessage("first")])
