"""PostgreSQL: opening never writes unless you write.

A writable open of a schema without a ledger creates nothing; reads then see an empty ledger
(exactly as SQLite's on a new path), or, when the schema named by ``?schema=`` does not exist,
raise NotFoundError saying so. The first append creates the ledger (once, whoever races), as
``create=True`` and ``chatledger init`` do at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chatledger.eventstore import (
    EventStore,
    HumanMessage,
    MessageAppended,
    NotFoundError,
    Record,
    StoreError,
    open_store,
)
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import (
    at_once,
    postgres_empty_schema_url,
    postgres_schema_url,
    postgres_test_schema,
    postgres_url,
)

pytestmark = pytest.mark.postgres

HI = [MessageAppended(message=HumanMessage("hi"))]
ALL_TABLES = {"chatledger_migrations", "events", "streams", "stream_keys", "history", "clears"}


@pytest.fixture
def schema(tmp_path: Path) -> str:
    """A fresh schema name for this test (dropped after it, if anything created it)."""
    return postgres_test_schema(tmp_path)


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser connection, to look at the catalog."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        yield conn


def schema_exists(admin: psycopg.Connection[tuple[object, ...]], schema: str) -> bool:
    """Whether pg_namespace has the schema."""
    return admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                         (schema,)).fetchone() is not None


def tables(admin: psycopg.Connection[tuple[object, ...]], schema: str) -> set[str]:
    """The names of every table, view and sequence in the schema."""
    return {str(r[0]) for r in admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "UNION SELECT sequence_name FROM information_schema.sequences "
        "WHERE sequence_schema = %s", (schema, schema))}


def versions(admin: psycopg.Connection[tuple[object, ...]], schema: str) -> list[int]:
    """The schema versions recorded in the schema's chatledger_migrations."""
    return [int(str(r[0])) for r in admin.execute(
        f'SELECT version FROM "{schema}".chatledger_migrations ORDER BY version')]


def every_read(store: EventStore) -> dict[str, Callable[[], Any]]:
    """Each read of the store, as a call (async ones run on a loop of their own)."""
    now = datetime.now(UTC)
    return {
        "read": lambda: store.read("s"),
        "read_until_time": lambda: store.read("s", until_time=now),
        "read_all": lambda: store.read_all(),
        "read_all_limit": lambda: store.read_all(limit=10),
        "version": lambda: store.version("s"),
        "last_position": store.last_position,
        "event_count": store.event_count,
        "sessions": lambda: store.sessions(),
        "sessions_filtered": lambda: store.sessions(session_id="s"),
        "session": lambda: store.session("s"),
        "verify": lambda: store.verify(),
        "verify_one": lambda: store.verify("s"),
        "head": lambda: store.head().size,
        "load_history": lambda: store.load_history("s"),
        "load_history_at_version": lambda: store.load_history_at("s", version=0),
        "load_history_at_time": lambda: store.load_history_at("s", time=now),
        "catch_up": store.catch_up,
        "rebuild": lambda: store.rebuild(),
        "purge": store.purge,
        "empty_append": lambda: store.append("s", []),
        "counts": lambda: {k: store.stats()[k] for k in ("sessions", "events",
                                                          "projected_messages", "bytes")},
        "aread": lambda: asyncio.run(store.aread("s")),
        "aload_history": lambda: asyncio.run(store.aload_history("s")),
        "aload_history_at": lambda: asyncio.run(store.aload_history_at("s", version=0)),
        "aappend_nothing": lambda: asyncio.run(store.aappend("s", [])),
    }


def tails(store: PostgresStore) -> dict[str, Callable[[], Any]]:
    """The store's tails, each run until 0.2 s pass without an event (PostgreSQL only)."""
    return {"subscribe": lambda: list(store.subscribe(timeout=0.2)),
            "asubscribe": lambda: asyncio.run(_drain(store, timeout=0.2))}


async def _drain(store: EventStore, timeout: float) -> list[Record]:
    return [r async for r in store.asubscribe(timeout=timeout)]


def test_a_missing_schema_is_not_created_by_a_writable_open_and_reads_say_so(
        schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A ?schema= that does not exist (a typo): opening for writing creates nothing, and every
    read raises NotFoundError naming the schema and how to create it; still nothing exists."""
    url = postgres_schema_url(schema)
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        assert not schema_exists(admin, schema)
        for name, call in (every_read(store) | tails(store)).items():
            if name in ("empty_append", "aappend_nothing"):
                continue  # an append of nothing reads the version (below)
            with pytest.raises(NotFoundError) as info:
                call()
            message = str(info.value)
            assert f"schema '{schema}'" in message and "does not exist" in message, name
            assert "nothing was created" in message and "chatledger init" in message, name
            assert "create=True" in message and "first append" in message, name
        with pytest.raises(NotFoundError, match="does not exist"):
            store.append("s", [])
        with pytest.raises(NotFoundError, match="does not exist"):
            store.erase("s")
    assert not schema_exists(admin, schema)


def test_an_empty_schema_reads_as_an_empty_ledger_as_sqlite_does(
        schema: str, admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    """On an existing schema without chatledger's tables, every read answers what a SQLite
    store answers on a new path, and neither creates anything."""
    url = postgres_empty_schema_url(schema)
    sqlite_path = tmp_path / "new.db"
    with open_store(url) as pg, open_store(f"sqlite:///{sqlite_path}") as lite:
        assert isinstance(pg, PostgresStore)
        pg_reads, lite_reads = every_read(pg), every_read(lite)
        for name, call in pg_reads.items():
            if name == "counts":
                assert call() == {"sessions": 0, "events": 0, "projected_messages": 0,
                                  "bytes": 0}
                continue
            assert call() == lite_reads[name](), name
        for name, call in tails(pg).items():
            assert call() == [], name
        for store in (pg, lite):
            empty = store.head()
            assert (empty.size, empty.position) == (0, 0)
            assert store.verify(against=empty).ok
            assert store.verify().events == 0
            with pytest.raises(NotFoundError):
                store.load_history_at("s", version=1)
            with pytest.raises(NotFoundError):
                asyncio.run(store.aload_history_at("s", version=1))
            with pytest.raises(NotFoundError):
                store.prove(1)
            with pytest.raises(NotFoundError, match="no session"):
                store.erase("s")
    assert tables(admin, schema) == set()
    assert not sqlite_path.exists()


def test_a_head_of_another_log_does_not_verify_against_an_empty_schema(
        schema: str, tmp_path: Path) -> None:
    """verify(against=head) of a log holding events, on a schema with no ledger yet, reports
    the events as removed (the same check as on a stored log)."""
    with open_store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        other.append("s", HI)
        head = other.head()
    with open_store(postgres_empty_schema_url(schema)) as pg:
        report = pg.verify(against=head)
    assert [p.kind for p in report.problems] == ["head"]
    assert "fewer than the 1" in report.problems[0].detail


@pytest.mark.parametrize("missing", [True, False], ids=["missing-schema", "empty-schema"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_first_append_creates_the_ledger(
        schema: str, admin: psycopg.Connection[tuple[object, ...]], missing: bool,
        mode: str) -> None:
    """append (or aappend) on a store opened before the ledger existed creates it (and the
    schema), records every version, and works; later appends find it made."""
    url = postgres_schema_url(schema) if missing else postgres_empty_schema_url(schema)
    with open_store(url) as store:
        assert tables(admin, schema) == set()
        for text in ("one", "two"):
            events = [MessageAppended(message=HumanMessage(text))]
            if mode == "sync":
                store.append("s", events)
            else:
                asyncio.run(store.aappend("s", events))
        assert tables(admin, schema) >= ALL_TABLES
        assert versions(admin, schema) == [1, 2, 3, 4]
        assert store.load_history("s") == (2, [HumanMessage("one"), HumanMessage("two")])
        assert store.verify().ok
    with open_store(url, readonly=True) as again:
        assert again.version("s") == 2


def test_create_true_creates_the_schema_and_ledger_at_open(
        schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """open_store(url, create=True) makes a missing schema and its ledger at once; a read-only
    open then finds an empty ledger."""
    url = postgres_schema_url(schema)
    with open_store(url, create=True) as store:
        assert tables(admin, schema) >= ALL_TABLES
        assert versions(admin, schema) == [1, 2, 3, 4]
        assert store.event_count() == 0
    with open_store(url, readonly=True) as reader:
        assert reader.sessions() == [] and reader.verify().ok


def test_a_read_only_open_of_an_empty_schema_is_refused_untouched(
        schema: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """readonly=True on a schema holding no ledger says so, and how to make one."""
    url = postgres_empty_schema_url(schema)
    with pytest.raises(StoreError, match="holds no chatledger ledger; nothing was created"
                                         r" \(the first append creates it"):
        open_store(url, readonly=True)
    assert tables(admin, schema) == set()


@pytest.mark.parametrize("missing", [True, False], ids=["missing-schema", "empty-schema"])
def test_a_store_sees_a_ledger_another_process_created_after_it_opened(
        schema: str, missing: bool) -> None:
    """A store opened before the ledger existed reads it, and appends to it, once another
    store has created it."""
    url = postgres_schema_url(schema) if missing else postgres_empty_schema_url(schema)
    with open_store(url) as waiting:
        if missing:
            with pytest.raises(NotFoundError):
                waiting.version("s")
        else:
            assert waiting.version("s") == 0
        with open_store(url) as other:
            other.append("s", HI)
        assert waiting.version("s") == 1
        assert [r.version for r in waiting.read_all()] == [1]
        assert asyncio.run(waiting.aload_history("s")) == (1, [HumanMessage("hi")])
        waiting.append("s", HI)
        assert waiting.version("s") == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tail_started_before_the_ledger_existed_yields_its_first_event(
        schema: str, mode: str) -> None:
    """subscribe / asubscribe on an empty schema waits; the append that creates the ledger
    wakes it, and it yields that event."""
    url = postgres_empty_schema_url(schema)
    seen: list[Record] = []
    errors: list[BaseException] = []
    with open_store(url) as waiting, open_store(url) as writer:
        ready = threading.Event()

        def tail() -> None:
            try:
                if mode == "sync":
                    tailing = waiting.subscribe(timeout=10)
                    ready.set()
                    seen.append(next(tailing))
                    tailing.close()
                else:
                    async def first() -> Record:
                        ready.set()
                        async for record in waiting.asubscribe(timeout=10):
                            return record
                        raise AssertionError("the tail ended without an event")
                    seen.append(asyncio.run(first()))
            except BaseException as e:
                errors.append(e)

        thread = threading.Thread(target=tail)
        thread.start()
        ready.wait(5)
        threading.Event().wait(0.3)  # let the tail find no ledger and start waiting
        result = writer.append("s", HI)
        thread.join(15)
    assert errors == []
    assert [r.position for r in seen] == result.positions


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "a-store-each"])
def test_concurrent_first_appends_all_succeed_and_create_the_ledger_once(
        schema: str, admin: psycopg.Connection[tuple[object, ...]], shared: bool) -> None:
    """8 threads appending first at the same moment to a missing schema: every append
    succeeds, and each schema version is recorded once."""
    url = postgres_schema_url(schema)
    n = 8
    stores = [open_store(url)] if shared else [open_store(url) for _ in range(n)]
    errors = at_once(lambda i: stores[i % len(stores)].append(f"s{i}", HI, expected_version=0),
                     n)
    try:
        assert errors == []
        assert versions(admin, schema) == [1, 2, 3, 4]
        assert sorted(r.version for r in stores[0].read_all()) == [1] * n
        assert stores[0].verify().ok
    finally:
        for store in stores:
            store.close()



def test_once_the_ledger_is_seen_no_read_or_write_looks_for_it_again(
        schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first append (or a read that found the ledger), appends and reads go straight
    to their statements: the ledger check is remembered, not repeated."""
    from chatledger.eventstore.postgres import _connecting

    def looked(*args: object) -> None:
        raise AssertionError("the store looked for its ledger again")

    url = postgres_empty_schema_url(schema)
    with open_store(url) as writer, open_store(url) as reader:
        assert reader.version("s") == 0  # looks: no ledger yet
        writer.append("s", HI)  # creates it
        assert reader.version("s") == 1  # looks again, and finds it
        for name in ("read_state", "aread_state", "migrate"):
            monkeypatch.setattr(_connecting, name, looked)
        for store in (writer, reader):
            store.append("s", HI)
            asyncio.run(store.aappend("s", HI))
            assert store.read("s")[-1].version == store.version("s")
            assert store.sessions()[0].version == store.version("s")
            assert asyncio.run(store.aload_history("s"))[0] == store.version("s")
            assert store.verify().ok
