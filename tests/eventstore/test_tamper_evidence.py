"""Tamper evidence: any edit to a stored row, by someone holding the file, is found and located."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatledger.eventstore import (
    AIMessage,
    HumanMessage,
    MessageAppended,
    Problem,
    SessionKey,
    VerifyReport,
    _codec,
    open_store,
)

A = SessionKey(user_id="alice", conversation_id="1")
B = SessionKey(user_id="bob", conversation_id="1")


@dataclass(frozen=True)
class Row:
    """One stored event's identity: where it is and what it is."""

    stream_id: str
    version: int
    position: int


@dataclass
class Log:
    """A SQLite log file with two streams of four events each, and its rows."""

    path: Path
    rows: dict[tuple[str, int], Row]

    def row(self, key: SessionKey, version: int) -> Row:
        """The stored row of ``key`` at ``version``."""
        return self.rows[(key.stream_id, version)]

    def verify(self, key: SessionKey | None = None) -> VerifyReport:
        """Reopen the file as a store and verify it."""
        with open_store(f"sqlite:///{self.path}") as store:
            return store.verify(key)

    def tamper(self, *statements: tuple[str, tuple[object, ...]],
               drop_triggers: bool = True) -> None:
        """Run raw SQL on the file, as an attacker with write access to it would."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            if drop_triggers:
                conn.execute("DROP TRIGGER events_no_update")
                conn.execute("DROP TRIGGER events_no_delete")
            for sql, params in statements:
                conn.execute(sql, params)
        finally:
            conn.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    """A closed log file with interleaved appends to streams A and B."""
    path = tmp_path / "log.db"
    with open_store(f"sqlite:///{path}") as store:
        for turn in range(2):
            for key in (A, B):
                store.append(key, [
                    MessageAppended(message=HumanMessage(f"{key.user_id} says {turn}")),
                    MessageAppended(message=AIMessage(f"reply {turn}")),
                ], meta={"actor": key.user_id, "turn": turn})
        assert store.verify().ok
        rows = {(r.stream_id, r.version): Row(r.stream_id, r.version, r.position)
                for r in store.read_all()}
    yield Log(path, rows)


def located(report: VerifyReport, row: Row, *, with_position: bool = True) -> list[Problem]:
    """The problems of ``report`` that name ``row``'s stream and version (and position)."""
    return [p for p in report.problems
            if p.stream_id == row.stream_id and p.version == row.version
            and (not with_position or p.position == row.position)]


def where(row: Row) -> tuple[str, tuple[object, ...]]:
    """SQL predicate and parameters selecting ``row``."""
    return "stream_id = ? AND version = ?", (row.stream_id, row.version)


def test_triggers_block_update_and_delete(log: Log) -> None:
    """With the triggers in place, UPDATE and DELETE on events fail and change nothing."""
    row = log.row(A, 2)
    cond, params = where(row)
    for sql, args in [
        (f"UPDATE events SET data = '{{}}' WHERE {cond}", params),
        (f"UPDATE events SET meta = '{{}}' WHERE {cond}", params),
        (f"UPDATE events SET recorded_at = '2000-01-01T00:00:00.000000Z' WHERE {cond}", params),
        (f"UPDATE events SET position = 999 WHERE {cond}", params),
        (f"UPDATE events SET digest = 'x', chain = 'y' WHERE {cond}", params),
        (f"DELETE FROM events WHERE {cond}", params),
        ("DELETE FROM events", ()),
    ]:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            log.tamper((sql, args), drop_triggers=False)
    assert log.verify().ok
    with open_store(f"sqlite:///{log.path}") as store:
        assert len(store.read_all()) == 8


def test_changed_payload_is_located(log: Log) -> None:
    """Rewriting an event's data is reported at its stream, version and position."""
    row = log.row(A, 2)
    cond, params = where(row)
    forged = '{"type":"message_appended","message":{"type":"ai","content":"forged"}}'
    log.tamper((f"UPDATE events SET data = ? WHERE {cond}", (forged, *params)))
    report = log.verify()
    assert not report.ok
    assert [p.kind for p in located(report, row)] == ["altered"]
    assert {p.stream_id for p in report.problems} == {A.stream_id}
    assert log.verify(B).ok
    assert not log.verify(A).ok


def test_changed_payload_with_recomputed_payload_digest_is_located(log: Log) -> None:
    """Rewriting data and its payload digest still breaks the envelope digest of that row."""
    row = log.row(B, 3)
    cond, params = where(row)
    forged = '{"type":"message_appended","message":{"type":"human","content":"forged"}}'
    digest = hashlib.sha256(forged.encode()).hexdigest()
    log.tamper((f"UPDATE events SET data = ?, payload_digest = ? WHERE {cond}",
                (forged, digest, *params)))
    report = log.verify()
    assert not report.ok
    assert located(report, row)


def test_row_rewritten_with_recomputed_digest_breaks_the_chain(log: Log) -> None:
    """Recomputing payload digest and envelope digest is still caught by the chain link."""
    row = log.row(A, 1)
    conn = sqlite3.connect(log.path)
    event_id, type_, recorded_at, meta = conn.execute(
        "SELECT event_id, type, recorded_at, meta FROM events WHERE stream_id = ? AND version = ?",
        (row.stream_id, row.version)).fetchone()
    conn.close()
    forged = '{"type":"message_appended","message":{"type":"human","content":"forged"}}'
    pdigest = hashlib.sha256(forged.encode()).hexdigest()
    digest = _codec.digest_of(row.position, row.stream_id, row.version, event_id, type_,
                              recorded_at, pdigest, meta)
    cond, params = where(row)
    log.tamper((f"UPDATE events SET data = ?, payload_digest = ?, digest = ? WHERE {cond}",
                (forged, pdigest, digest, *params)))
    report = log.verify()
    assert not report.ok
    assert located(report, row)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("recorded_at", "2001-02-03T04:05:06.000000Z"),
        ("meta", '{"actor":"mallory","turn":0}'),
        ("event_id", "00000000-0000-4000-8000-000000000000"),
        ("type", "history_cleared"),
    ],
)
def test_changed_envelope_is_located(log: Log, column: str, value: str) -> None:
    """Rewriting recorded_at, meta, event_id or type is reported at that row."""
    row = log.row(A, 3)
    cond, params = where(row)
    log.tamper((f"UPDATE events SET {column} = ? WHERE {cond}", (value, *params)))
    report = log.verify()
    assert not report.ok
    assert [p.kind for p in located(report, row)] == ["altered"]
    assert {p.stream_id for p in report.problems} == {A.stream_id}


def test_deleted_middle_row_is_located(log: Log) -> None:
    """Deleting an event inside a stream is reported as that stream's missing version."""
    row = log.row(B, 2)
    cond, params = where(row)
    log.tamper((f"DELETE FROM events WHERE {cond}", params))
    report = log.verify()
    assert not report.ok
    missing = located(report, row, with_position=False)
    assert [p.kind for p in missing] == ["missing"]
    assert {p.stream_id for p in report.problems} == {B.stream_id, ""}
    assert [(p.position, p.kind) for p in report.problems if not p.stream_id] == [
        (row.position, "missing")]
    assert log.verify(A).ok


def test_deleted_first_row_is_located(log: Log) -> None:
    """Deleting the first event of a stream is reported as its version 1 missing."""
    row = log.row(A, 1)
    cond, params = where(row)
    log.tamper((f"DELETE FROM events WHERE {cond}", params))
    report = log.verify()
    assert [p.kind for p in located(report, row, with_position=False)] == ["missing"]


def test_deleted_last_row_is_located(log: Log) -> None:
    """Deleting the last event of a stream is caught against the stream's head."""
    row = log.row(A, 4)
    cond, params = where(row)
    log.tamper((f"DELETE FROM events WHERE {cond}", params))
    report = log.verify()
    assert not report.ok
    assert [p.kind for p in located(report, row, with_position=False)] == ["missing"]
    assert {p.stream_id for p in report.problems} == {A.stream_id, ""}


def test_deleted_stream_is_located(log: Log) -> None:
    """Deleting every event of a stream is caught against the stream's head."""
    log.tamper(("DELETE FROM events WHERE stream_id = ?", (A.stream_id,)))
    report = log.verify()
    assert not report.ok
    assert any(p.stream_id == A.stream_id and p.version == 4 for p in report.problems)


def swap_positions(log: Log, one: Row, two: Row) -> None:
    """Exchange the positions of two rows (through a free position, the index is unique)."""
    free = 10_000
    log.tamper(
        ("UPDATE events SET position = ? WHERE stream_id = ? AND version = ?",
         (free, one.stream_id, one.version)),
        ("UPDATE events SET position = ? WHERE stream_id = ? AND version = ?",
         (one.position, two.stream_id, two.version)),
        ("UPDATE events SET position = ? WHERE stream_id = ? AND version = ?",
         (two.position, one.stream_id, one.version)),
    )


@pytest.mark.parametrize("pair", [((A, 1), (A, 2)), ((A, 3), (B, 1)), ((B, 4), (A, 2))],
                         ids=["same-stream", "across-streams", "across-streams-late"])
def test_swapped_positions_are_located(log: Log,
                                       pair: tuple[tuple[SessionKey, int], ...]) -> None:
    """Swapping two rows' positions is reported at both rows, with their current positions."""
    one, two = log.row(*pair[0]), log.row(*pair[1])
    swap_positions(log, one, two)
    report = log.verify()
    assert not report.ok
    now_one = Row(one.stream_id, one.version, two.position)
    now_two = Row(two.stream_id, two.version, one.position)
    assert located(report, now_one)
    assert located(report, now_two)


def test_nulled_payload_without_redaction_is_located(log: Log) -> None:
    """A payload set to NULL without a MessageRedacted event is reported at that row."""
    row = log.row(B, 3)
    cond, params = where(row)
    log.tamper((f"UPDATE events SET data = NULL WHERE {cond}", params))
    report = log.verify()
    assert not report.ok
    assert [p.kind for p in located(report, row)] == ["erased"]


def test_nulled_payload_is_caught_even_with_triggers(log: Log) -> None:
    """The trigger lets a payload be nulled (for erasure), but verify still reports it."""
    row = log.row(A, 1)
    cond, params = where(row)
    log.tamper((f"UPDATE events SET data = NULL, salt = NULL WHERE {cond}", params),
               drop_triggers=False)
    report = log.verify()
    assert [p.kind for p in located(report, row)] == ["erased"]


def test_lawful_erasure_is_not_a_problem(log: Log) -> None:
    """An erase() through the store nulls payloads and still verifies."""
    with open_store(f"sqlite:///{log.path}") as store:
        store.erase(A, versions=[1, 3])
    assert log.verify().ok


def test_each_tampered_row_is_reported_once_per_stream(log: Log) -> None:
    """Edits in two streams are each reported under their own stream."""
    ra, rb = log.row(A, 2), log.row(B, 4)
    log.tamper(
        ("UPDATE events SET meta = '{}' WHERE stream_id = ? AND version = ?",
         (ra.stream_id, ra.version)),
        ("UPDATE events SET data = NULL WHERE stream_id = ? AND version = ?",
         (rb.stream_id, rb.version)),
    )
    report = log.verify()
    assert located(report, ra) and located(report, rb)
    assert {p.stream_id for p in report.problems} == {A.stream_id, B.stream_id}


TAMPERS: dict[str, Callable[[Log], None]] = {
    "payload": lambda log: log.tamper(
        ("UPDATE events SET data = '{}' WHERE version = 2 AND stream_id = ?", (A.stream_id,))),
    "delete": lambda log: log.tamper(
        ("DELETE FROM events WHERE version = 2 AND stream_id = ?", (A.stream_id,))),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_report_counts_streams_and_events(log: Log, name: str) -> None:
    """The report still counts the streams and the events it checked after tampering."""
    TAMPERS[name](log)
    report = log.verify()
    assert report.streams == 2
    assert report.events == (8 if name == "payload" else 7)
