"""fork, rebuild and erase through the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from chatledger.eventstore import EventStore, PayloadErased, SessionKey
from tests.tools.cli_support import ALICE, assert_one_line_error, run


def test_fork_copies_the_history_into_a_new_key(db: str, store: EventStore) -> None:
    """--to conversation_id=2 forks into user_id=123 conversation_id=2 with the same messages."""
    result = run(["--db", db, "fork", "user_id=123", "conversation_id=1", "--to",
                  "conversation_id=2"])
    assert result.exit_code == 0, result.output
    target = SessionKey(user_id="123", conversation_id="2")
    assert store.load_history(target)[1] == store.load_history(ALICE)[1]
    assert store.read(target)[0].type == "session_forked"


def test_fork_at_a_version(db: str, store: EventStore) -> None:
    """--at 2 forks the history as it stood at version 2."""
    data = json.loads(run(["--db", db, "--json", "fork", "user_id=123", "conversation_id=1",
                           "--to", "conversation_id=3", "--at", "2"]).stdout)
    assert data["messages"] == 2
    target = SessionKey(user_id="123", conversation_id="3")
    assert store.load_history(target)[1] == store.load_history_at(ALICE, version=2)[1]


def test_fork_onto_an_existing_session_writes_nothing(db: str, store: EventStore) -> None:
    """Forking onto a session that has events fails and leaves both sessions as they were."""
    assert run(["--db", db, "fork", "bob", "--to", "bob2"]).exit_code == 0
    before = store.last_position()
    result = run(["--db", db, "fork", "bob", "--to", "bob2"])
    assert_one_line_error(result, "cannot fork 'session_id=bob' onto 'session_id=bob2'",
                          "that session already exists", "nothing was written")
    assert store.last_position() == before


def test_fork_onto_itself_is_refused(db: str) -> None:
    """A --to that changes nothing names the mistake."""
    result = run(["--db", db, "fork", "bob", "--to", "session_id=bob"])
    assert result.exit_code == 2 and "onto itself" in result.stderr


def test_rebuild_replays_every_event_and_keeps_the_histories(db: str, db_path: Path,
                                                             store: EventStore) -> None:
    """rebuild reports the events replayed and the rate; histories are unchanged after it."""
    before = store.load_history(ALICE)
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM history")
    conn.commit()
    conn.close()
    result = run(["--db", db, "rebuild"])
    assert result.exit_code == 0
    assert result.stdout.startswith("replayed 7 events in ") and "events/s" in result.stdout
    assert store.load_history(ALICE) == before
    assert json.loads(run(["--db", db, "rebuild", "--json"]).stdout)["events"] == 7


def test_erase_scrubs_content_and_verify_still_passes(db: str, store: EventStore) -> None:
    """erase --version 2 --yes removes that payload, records the erasure, and verify passes."""
    result = run(["--db", db, "erase", "user_id=123", "conversation_id=1", "--version", "2",
                  "--yes", "--reason", "GDPR request"])
    assert result.exit_code == 0, result.output
    assert "erased 1 event of" in result.stdout
    records = store.read(ALICE)
    assert isinstance(records[1].event, PayloadErased)
    assert records[-1].type == "message_redacted"
    assert "Zürich? 🕰" not in str([m.text for m in store.load_history(ALICE)[1]])
    assert run(["--db", db, "verify"]).exit_code == 0


def test_erase_of_a_whole_session(db: str, store: EventStore) -> None:
    """erase KEY --yes erases every message of the session."""
    data = json.loads(run(["--db", db, "--json", "erase", "bob", "--yes"]).stdout)
    assert data["erased"] == 2
    assert store.load_history("bob")[1] == []


def test_erase_of_a_missing_version_writes_nothing(db: str, store: EventStore) -> None:
    """--version beyond the session's head is refused and nothing is erased."""
    before = store.last_position()
    result = run(["--db", db, "erase", "bob", "--version", "9", "--yes"])
    assert result.exit_code == 2 and "no version 9" in result.stderr
    assert store.last_position() == before
