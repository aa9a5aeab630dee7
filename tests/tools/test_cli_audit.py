"""The audit commands: ``head``, ``verify --against``, ``prove``, ``purge``, and erase's receipt."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from chatledger.eventstore import (
    EventStore,
    HumanMessage,
    InclusionProof,
    LogHead,
    MessageAppended,
    verify_proof,
)
from tests.tools.cli_support import ALICE, assert_one_line_error, run


def test_head_writes_a_file_that_verify_against_accepts(db: str, tmp_path: Path,
                                                         store: EventStore) -> None:
    """head --out saves the head; verify --against it exits 0 while the log only grows."""
    out = tmp_path / "head.json"
    result = run(["--db", db, "head", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = LogHead.from_json(out.read_text())
    assert saved.size == 7 and saved.position == 7
    assert json.loads(run(["--db", db, "head", "--json"]).stdout)["root"] == saved.root
    store.append("later", [MessageAppended(message=HumanMessage("more"))])
    result = run(["--db", db, "verify", "--against", str(out)])
    assert result.exit_code == 0, result.output
    assert "extends the head of 7 events" in result.stdout


def test_verify_against_a_head_the_log_no_longer_extends_exits_one(
        db: str, db_path: Path, tmp_path: Path) -> None:
    """After the tail is cut (events, catalog and counter), verify alone passes but
    verify --against exits 1 with a head problem."""
    out = tmp_path / "head.json"
    run(["--db", db, "head", "--out", str(out)])
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER events_no_delete")
    (chain, at), = conn.execute("SELECT chain, recorded_at FROM events WHERE stream_id = "
                                "'session_id=bob' AND version = 1")
    conn.execute("DELETE FROM events WHERE stream_id = 'session_id=bob' AND version = 2")
    conn.execute("DELETE FROM history WHERE stream_id = 'session_id=bob' AND version = 2")
    conn.execute("UPDATE streams SET version = 1, chain = ?, updated_at = ?, message_count = 1 "
                 "WHERE stream_id = 'session_id=bob'", (chain, at))
    conn.execute("UPDATE checkpoints SET position = 6")
    conn.commit()
    conn.close()
    assert run(["--db", db, "verify"]).exit_code == 0
    result = run(["--db", db, "verify", "--against", str(out), "--json"])
    assert result.exit_code == 1
    assert [p["kind"] for p in json.loads(result.stdout)["problems"]] == ["head"]


def test_verify_against_a_bad_file_is_one_clear_error(db: str, tmp_path: Path) -> None:
    """A missing or malformed head file is refused in one line."""
    assert_one_line_error(run(["--db", db, "verify", "--against", str(tmp_path / "no.json")]),
                          "no.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert_one_line_error(run(["--db", db, "verify", "--against", str(bad)]), "log head")
    assert_one_line_error(run(["--db", db, "verify", "bob", "--against", str(bad)]))


def test_prove_prints_a_proof_that_checks_out_offline(db: str, tmp_path: Path) -> None:
    """prove POSITION --json gives a proof verify_proof accepts against the saved head."""
    out = tmp_path / "head.json"
    run(["--db", db, "head", "--out", str(out)])
    result = run(["--db", db, "prove", "4", "--against", str(out), "--json"])
    assert result.exit_code == 0, result.output
    proof = InclusionProof(**json.loads(result.stdout))
    assert proof.position == 4 and proof.size == 7
    assert verify_proof(proof, LogHead.from_json(out.read_text()))
    assert "the proof checks out" in run(["--db", db, "prove", "1"]).stdout
    assert_one_line_error(run(["--db", db, "prove", "99"]), "no event at position 99")


def test_erase_reports_its_receipt_and_purge_succeeds(db: str) -> None:
    """erase --json lists the erased events with their kept digests and says it purged;
    purge exits 0 when nothing holds the old bytes."""
    data = json.loads(run(["--db", db, "--json", "erase", "user_id=123", "conversation_id=1",
                           "--version", "2", "--yes"]).stdout)
    assert data["purged"] is True
    assert [(e["stream_id"], e["version"]) for e in data["events"]] == [(ALICE.stream_id, 2)]
    assert len(data["events"][0]["payload_digest"]) == 64
    assert data["after"]["size"] == data["before"]["size"] + 1
    result = run(["--db", db, "purge"])
    assert result.exit_code == 0 and result.stdout.startswith("purged")


def test_purge_exits_one_while_a_reader_holds_an_old_snapshot(db: str, db_path: Path,
                                                              store: EventStore) -> None:
    """purge does not wait on a reader: it says so and exits 1, and succeeds once it is gone."""
    store.append("bob", [MessageAppended(message=HumanMessage("x"))])
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()
    store.append("bob", [MessageAppended(message=HumanMessage("y"))])
    result = run(["--db", db, "purge", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout) == {"purged": False}
    reader.execute("COMMIT")
    reader.close()
    assert run(["--db", db, "purge"]).exit_code == 0
