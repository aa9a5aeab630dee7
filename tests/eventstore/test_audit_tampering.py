"""Tampering by someone with write access to the database (append-only triggers dropped first):
each edit is found by ``verify()``, or, where no in-database check can see it, by
``verify(against=head)`` with a head kept elsewhere."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chatledger.eventstore import (
    AIMessage,
    HumanMessage,
    InvalidInputError,
    LogHead,
    MessageAppended,
    SessionKey,
    StoreError,
    VerifyReport,
    _codec,
    open_store,
)
from chatledger.eventstore.sqlite import SQLiteStore
from tests.pgsupport import postgres_schema_url, postgres_test_schema, postgres_url

ALICE = SessionKey(user_id="alice", conversation_id="1")
CAROL = SessionKey(user_id="carol", conversation_id="1")


@dataclass
class Ledger:
    """A closed log on one backend, a head taken of it, and raw SQL access to its tables."""

    url: str
    head: LogHead
    sql: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

    def verify(self, *, against: bool = False) -> VerifyReport:
        """Open the log afresh and verify it (against the saved head if asked)."""
        with open_store(self.url) as store:
            return store.verify(against=self.head if against else None)


def _fill(url: str) -> LogHead:
    with open_store(url) as store:
        for turn in range(2):
            for key, name in ((ALICE, "Bob"), (CAROL, "Dan")):
                store.append(key, [MessageAppended(message=HumanMessage(f"My name is {name}.")),
                                   MessageAppended(message=AIMessage(f"Hello {name} ({turn})."))])
        assert store.verify().ok
        # on PostgreSQL the head covers the prefix below the reader horizon, which another
        # client's transaction (tests of other modules share the server) may hold back a moment
        deadline = time.monotonic() + 30
        head = store.head()
        while head.size < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
            head = store.head()
        assert head.size == 8
        return head


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """Two sessions of two turns each, interleaved, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "log.db"
        url = f"sqlite:///{path}"
        head = _fill(url)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")

        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()
        yield Ledger(url, head, run)
        conn.close()
        return
    schema = postgres_test_schema(tmp_path)
    url = postgres_schema_url(schema)
    head = _fill(url)
    with psycopg.connect(postgres_url(), autocommit=True,
                         options=f"-c search_path={schema}") as pconn:
        pconn.execute("ALTER TABLE events DISABLE TRIGGER USER")

        def prun(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            cur = pconn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []
        yield Ledger(url, head, prun)


def kinds(report: VerifyReport) -> set[str]:
    """The kinds of problem a report names."""
    return {p.kind for p in report.problems}


def test_an_untouched_log_verifies_and_extends_its_head(ledger: Ledger) -> None:
    """Before any edit, verify() and verify(against=head) both pass."""
    assert ledger.verify().ok
    assert ledger.verify(against=True).ok


def test_a_session_deleted_from_every_table_is_found(ledger: Ledger) -> None:
    """Deleting a whole session everywhere is found (SQLite: by the position gaps; both: by
    the head)."""
    for table in ("events", "streams", "stream_keys", "history", "clears"):
        ledger.sql(f"DELETE FROM {table} WHERE stream_id = ?", (ALICE.stream_id,))
    if ledger.url.startswith("sqlite"):
        assert "missing" in kinds(ledger.verify())
    against = ledger.verify(against=True)
    assert "head" in kinds(against)


def test_a_deleted_last_turn_with_a_rewound_head_is_found(ledger: Ledger) -> None:
    """Deleting a session's last turn and rewinding its catalog row is found."""
    sid = ALICE.stream_id
    (chain, at), = ledger.sql("SELECT chain, recorded_at FROM events WHERE stream_id = ? "
                              "AND version = 2", (sid,))
    ledger.sql("DELETE FROM events WHERE stream_id = ? AND version > 2", (sid,))
    ledger.sql("DELETE FROM history WHERE stream_id = ? AND version > 2", (sid,))
    ledger.sql("UPDATE streams SET version = 2, chain = ?, updated_at = ?, message_count = 2 "
               "WHERE stream_id = ?", (chain, at, sid))
    if ledger.url.startswith("sqlite"):
        report = ledger.verify()
        assert [(p.stream_id, p.kind) for p in report.problems] == [("", "missing")]
    assert "head" in kinds(ledger.verify(against=True))


def test_the_log_tail_removed_with_its_counter_is_found_only_against_a_head(
        ledger: Ledger) -> None:
    """Removing the log's last turn, its catalog and the position counter defeats every
    in-database check; the head kept elsewhere still finds it."""
    sid = CAROL.stream_id  # CAROL wrote the last turn
    (chain, at), = ledger.sql(
        "SELECT chain, recorded_at FROM events WHERE stream_id = ? AND version = 2", (sid,))
    ledger.sql("DELETE FROM events WHERE stream_id = ? AND version > 2", (sid,))
    ledger.sql("DELETE FROM history WHERE stream_id = ? AND version > 2", (sid,))
    ledger.sql("UPDATE streams SET version = 2, chain = ?, updated_at = ?, message_count = 2 "
               "WHERE stream_id = ?", (chain, at, sid))
    if ledger.url.startswith("sqlite"):
        (last,), = ledger.sql("SELECT max(position) FROM events", ())
        ledger.sql("UPDATE checkpoints SET position = ?", (last,))
    else:
        ledger.sql("UPDATE streams SET projected_version = 2 WHERE stream_id = ?", (sid,))
    assert ledger.verify().ok
    report = ledger.verify(against=True)
    assert [p.kind for p in report.problems] == ["head"]
    assert "fewer than" in report.problems[0].detail


def test_an_edited_history_projection_is_found(ledger: Ledger) -> None:
    """Rewriting what the model reads (the history table) is found against the log."""
    ledger.sql("UPDATE history SET message = replace(message, 'Bob', 'Eve') WHERE stream_id = ?",
               (ALICE.stream_id,))
    with open_store(ledger.url) as store:
        assert HumanMessage("My name is Eve.") in store.load_history(ALICE)[1]
        first = store.read(ALICE)[0]
    report = ledger.verify()
    assert [(p.stream_id, p.version, p.position, p.kind) for p in report.problems] == [
        (ALICE.stream_id, 1, first.position, "projection")]


def _rewrite(ledger: Ledger, key: SessionKey, version: int, text: str) -> None:
    """Edit one message and recompute its digests, every later chain link and the catalog, as
    an attacker who knows the scheme would."""
    sid = key.stream_id
    rows = ledger.sql("SELECT version, position, event_id, type, recorded_at, data, meta, salt "
                      "FROM events WHERE stream_id = ? ORDER BY version", (sid,))
    chain = _codec.GENESIS
    for v, position, event_id, type_, at, data, meta, salt in rows:
        if v == version:
            data = _codec.encode(MessageAppended(message=HumanMessage(text))).decode()
            ledger.sql("UPDATE history SET message = ? WHERE stream_id = ? AND version = ?",
                       (_codec.encode(HumanMessage(text)).decode(), sid, v))
        pdigest = _codec.payload_digest(data.encode(), salt)
        digest = _codec.digest_of(position, sid, v, event_id, type_, at, pdigest, meta)
        chain = _codec.chain_of(chain, digest)
        ledger.sql("UPDATE events SET data = ?, payload_digest = ?, digest = ?, chain = ? "
                   "WHERE stream_id = ? AND version = ?", (data, pdigest, digest, chain, sid, v))
    ledger.sql("UPDATE streams SET chain = ? WHERE stream_id = ?", (chain, sid))


def test_a_message_rewritten_with_recomputed_digests_is_found_against_a_head(
        ledger: Ledger) -> None:
    """Digests are unkeyed, so a full recomputation passes verify(); the head does not."""
    _rewrite(ledger, ALICE, 1, "My name is Eve.")
    with open_store(ledger.url) as store:
        assert store.read(ALICE)[0].event == MessageAppended(message=HumanMessage("My name is Eve."))
    assert ledger.verify().ok
    report = ledger.verify(against=True)
    assert [p.kind for p in report.problems] == ["head"]


def test_a_flipped_byte_in_a_rows_stream_id_is_found(tmp_path: Path) -> None:
    """One byte changed in an events row's stream_id (its index entry left as it was) is found:
    verify reads the row, not the index."""
    path = tmp_path / "log.db"
    _fill(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    (root,), = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'")
    (page_size,), = conn.execute("PRAGMA page_size")
    conn.close()
    raw = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    at = raw.index(b"user_id=alice", start, start + page_size)
    raw[at + len("user_id=alic")] = ord("x")  # alice -> alicx, in the table's page only
    path.write_bytes(bytes(raw))
    with SQLiteStore(f"sqlite:///{path}", projections=False) as store:
        report = store.verify()
    assert not report.ok
    bad = [p for p in report.problems if p.stream_id == "conversation_id=1/user_id=alicx"]
    assert bad and {p.kind for p in bad} >= {"altered"}
    assert any(p.stream_id == ALICE.stream_id and p.kind == "missing" for p in report.problems)


def test_a_catalog_row_for_a_session_without_events_is_found(ledger: Ledger) -> None:
    """A made-up session in the catalog (no events behind it, version 0) is a problem, not an
    intact log that lists a session nobody wrote."""
    ghost = SessionKey(user_id="alice", conversation_id="ghost")
    ledger.sql("INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at, "
               "message_count, tags) VALUES (?, ?, 0, ?, '2030-01-01T00:00:00.000000Z', "
               "'2030-01-01T00:00:00.000000Z', 42, '[\"vip\"]')",
               (ghost.stream_id, _codec.encode(ghost.parts).decode(), _codec.GENESIS))
    for name, value in ghost.parts.items():
        ledger.sql("INSERT INTO stream_keys (name, value, stream_id) VALUES (?, ?, ?)",
                   (name, value, ghost.stream_id))
    report = ledger.verify()
    assert [(p.stream_id, p.kind) for p in report.problems] == [(ghost.stream_id, "catalog")]


def test_an_event_of_an_unknown_type_is_named(ledger: Ledger) -> None:
    """An event whose type this release does not know, with every digest recomputed, is
    named by verify (as every reader refuses it) instead of passing as intact."""
    sid = ALICE.stream_id
    rows = ledger.sql("SELECT version, position, event_id, type, recorded_at, data, meta, salt "
                      "FROM events WHERE stream_id = ? ORDER BY version", (sid,))
    chain = _codec.GENESIS
    for v, position, event_id, type_, at, data, meta, salt in rows:
        if v == 2:
            type_, data = "session_annotated", '{"type":"session_annotated","note":"x"}'
            ledger.sql("DELETE FROM history WHERE stream_id = ? AND version = 2", (sid,))
        pdigest = _codec.payload_digest(data.encode(), salt)
        digest = _codec.digest_of(position, sid, v, event_id, type_, at, pdigest, meta)
        chain = _codec.chain_of(chain, digest)
        ledger.sql("UPDATE events SET type = ?, data = ?, payload_digest = ?, digest = ?, "
                   "chain = ? WHERE stream_id = ? AND version = ?",
                   (type_, data, pdigest, digest, chain, sid, v))
    ledger.sql("UPDATE streams SET chain = ?, message_count = message_count - 1 "
               "WHERE stream_id = ?", (chain, sid))
    report = ledger.verify()
    assert (sid, 2, "unknown") in {(p.stream_id, p.version, p.kind) for p in report.problems}


@pytest.mark.parametrize(("column", "value"), [("version", "abc"), ("data", b"\x00{}"),
                                               ("digest", None), ("recorded_at", 7)])
def test_values_of_the_wrong_storage_class_are_reported_not_crashed_on(
        tmp_path: Path, column: str, value: Any) -> None:
    """SQLite lets whoever has the file past STRICT (writable_schema): a column of the wrong
    type is a problem verify names, and head() still answers."""
    path = tmp_path / "log.db"
    _fill(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(replace(sql, ') STRICT', ')'), "
                 "'digest TEXT NOT NULL', 'digest TEXT') WHERE name = 'events'")
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = 3", (value,))
    conn.close()
    with SQLiteStore(f"sqlite:///{path}", projections=False) as store:
        report = store.verify()
        head = store.head()
    assert not report.ok
    assert "altered" in {p.kind for p in report.problems}
    assert head.size == 8


def test_a_damaged_schema_version_is_a_store_error(tmp_path: Path) -> None:
    """A schema version that is not a number makes opening fail with a StoreError naming it,
    not a bare ValueError."""
    path = tmp_path / "log.db"
    _fill(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE chatledger_meta SET value = 'abc' WHERE name = 'schema_version'")
    conn.close()
    for readonly in (True, False):
        with pytest.raises(StoreError, match=r"damaged schema version \('abc'"):
            open_store(f"sqlite:///{path}", readonly=readonly).read_all()


@pytest.mark.parametrize("text", [
    '{"size": 99999999999999999999999, "root": "%s", "position": 1, "recorded_at": null}',
    '{"size": 1, "root": "%s", "position": -1, "recorded_at": null}',
])
def test_a_head_out_of_range_is_refused(text: str) -> None:
    """A head whose size or position no database can hold is not a log head (it used to make
    verify(against=...) fail with OverflowError)."""
    with pytest.raises(InvalidInputError, match="not a chatledger log head"):
        LogHead.from_json(text % ("a" * 64))
    with pytest.raises(InvalidInputError, match="size must be an int"):
        LogHead(size=2**63, root="a" * 64, position=1, recorded_at=None)


def test_an_edited_history_row_is_named_beside_an_altered_event_of_its_session(
        ledger: Ledger) -> None:
    """One altered payload does not hide a history row rewritten elsewhere in its session:
    verify names both."""
    sid = ALICE.stream_id
    ledger.sql("UPDATE events SET data = '{bad' WHERE stream_id = ? AND version = 1", (sid,))
    ledger.sql("UPDATE history SET message = ? WHERE stream_id = ? AND version = 4",
               (_codec.encode(AIMessage("EVIL rewritten answer")).decode(), sid))
    found = {(p.stream_id, p.version, p.kind) for p in ledger.verify().problems}
    assert {(sid, 1, "altered"), (sid, 4, "projection")} <= found
