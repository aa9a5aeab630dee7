"""The read commands: sessions, history, log, verify and stats, as tables and as JSON."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from chatledger.eventstore import EventStore, HumanMessage, MessageAppended
from tests.tools.cli_support import ALICE, BOB, run, tamper


def test_sessions_lists_every_session_newest_first(db: str) -> None:
    """The catalog shows both sessions, the last active one first, with counts."""
    result = run(["--db", db, "sessions"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "MESSAGES", "CREATED", "LAST", "ACTIVE", "TAGS"]
    assert lines[2].startswith("session_id=bob")
    assert lines[3].startswith("conversation_id=1 user_id=123")
    assert "next page" not in result.stdout


def test_sessions_filters_by_key_parts(db: str) -> None:
    """sessions user_id=123 lists only that user's sessions."""
    result = run(["--db", db, "--json", "sessions", "user_id=123"])
    data = json.loads(result.stdout)
    assert [s["key"] for s in data["sessions"]] == [ALICE.parts]


def test_sessions_pages_with_a_cursor(db: str) -> None:
    """--limit 1 prints a cursor; --after it gives the next page, and the last page has none."""
    first = json.loads(run(["--db", db, "sessions", "--limit", "1", "--json"]).stdout)
    assert [s["stream_id"] for s in first["sessions"]] == [BOB.stream_id]
    table = run(["--db", db, "sessions", "--limit", "1"]).stdout
    assert f"next page: --after '{first['next']}'" in table
    second = json.loads(run(["--db", db, "sessions", "--limit", "1", "--after", first["next"],
                             "--json"]).stdout)
    assert [s["stream_id"] for s in second["sessions"]] == [ALICE.stream_id]
    assert second["next"] is None


def test_history_shows_roles_text_and_tool_calls(db: str) -> None:
    """history prints each message with its role; tool calls and results are spelled out."""
    result = run(["--db", db, "history", "user_id=123", "conversation_id=1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "version 5" in out and "5 messages" in out
    assert "user       Wie spät ist es in Zürich? 🕰" in out
    assert 'clock({"city": "Zürich"})' in out
    assert "[call_1] 14:05" in out


def test_history_json_carries_the_messages(db: str) -> None:
    """--json gives the key, the version and every message in chatledger's JSON."""
    data = json.loads(run(["--db", db, "history", "--json", "user_id=123",
                           "conversation_id=1"]).stdout)
    assert data["key"] == ALICE.parts and data["version"] == 5
    assert [m["type"] for m in data["messages"]] == ["system", "human", "ai", "tool", "ai"]
    assert data["messages"][1]["content"] == "Wie spät ist es in Zürich? 🕰"


def test_history_as_of_a_version(db: str) -> None:
    """--as-of 2 shows the history after the second event, and says the session is further."""
    result = run(["--db", db, "history", "user_id=123", "conversation_id=1", "--as-of", "2"])
    assert "version 2 (as of; the session is at 5)" in result.stdout
    assert "2 messages" in result.stdout
    assert "14:05" not in result.stdout


def test_history_as_of_a_time_with_a_zone(db: str, store: EventStore) -> None:
    """--as-of with an ISO time and a zone shows the history at that moment."""
    seen = store.read(BOB)[-1].recorded_at
    time.sleep(0.01)  # so the next event's recorded_at is strictly later
    store.append(BOB, [MessageAppended(message=HumanMessage(content="after"))])
    assert store.read(BOB)[-1].recorded_at > seen
    moment = seen.astimezone(timezone(timedelta(hours=2))).isoformat()
    data = json.loads(run(["--db", db, "--json", "history", "bob", "--as-of", moment]).stdout)
    assert [m["content"] for m in data["messages"]] == ["hi im bob!", "Nice to meet you, Bob!"]
    assert data["head"] == 3


def test_history_window_never_splits_a_tool_call_from_its_result(db: str) -> None:
    """--window N gives the last N messages, but never a tool result without its call."""
    def window(n: int) -> list[str]:
        data = json.loads(run(["--db", db, "--json", "history", "user_id=123",
                               "conversation_id=1", "--window", str(n)]).stdout)
        return [m["type"] for m in data["messages"]]

    assert window(3) == ["ai", "tool", "ai"]
    assert window(2) == ["ai"]


def test_log_lists_events_with_digests(db: str, store: EventStore) -> None:
    """log prints position, version, type, time and a digest prefix for every event."""
    result = run(["--db", db, "log", "bob"])
    assert result.exit_code == 0
    rows = result.stdout.splitlines()[2:]
    records = store.read(BOB)
    assert len(rows) == len(records)
    for row, rec in zip(rows, records, strict=True):
        cells = row.split()
        assert cells[:3] == [str(rec.position), str(rec.version), "message_appended"]
        assert rec.digest[:12] in row


def test_log_json_gives_full_records(db: str, store: EventStore) -> None:
    """log --json gives every envelope field, the full digest and chain included."""
    data = json.loads(run(["--db", db, "log", "bob", "--json"]).stdout)
    rec = store.read(BOB)[0]
    assert data[0]["event_id"] == rec.event_id
    assert data[0]["digest"] == rec.digest and data[0]["chain"] == rec.chain
    assert data[0]["event"] == {"type": "message_appended",
                                "message": {"type": "human", "content": "hi im bob!"}}
    assert datetime.fromisoformat(data[0]["recorded_at"]) == rec.recorded_at


def test_verify_exits_zero_on_an_intact_log(db: str) -> None:
    """verify says intact and exits 0."""
    result = run(["--db", db, "verify"])
    assert result.exit_code == 0
    assert result.stdout.startswith("intact: 7 events in 2 sessions")


def test_verify_names_a_hand_edited_row_and_exits_one(db: str, db_path: Path,
                                                     store: EventStore) -> None:
    """After a payload is edited by hand, verify lists that row and exits 1."""
    rec = store.read(ALICE)[4]
    tamper(db_path, ALICE.stream_id, 5)
    result = run(["--db", db, "verify"])
    assert result.exit_code == 1
    bad = [line for line in result.stdout.splitlines() if line.startswith(ALICE.stream_id)]
    assert bad and bad[0].split()[1:4] == ["5", str(rec.position), "altered"]
    data = json.loads(run(["--db", db, "verify", "--json"]).stdout)
    assert data["ok"] is False
    assert {(p["stream_id"], p["version"], p["kind"]) for p in data["problems"]} == {
        (ALICE.stream_id, 5, "altered")}


def test_verify_of_one_session_ignores_the_others(db: str, db_path: Path) -> None:
    """verify bob passes even when another session was tampered with."""
    tamper(db_path, ALICE.stream_id, 5)
    assert run(["--db", db, "verify", "bob"]).exit_code == 0
    assert run(["--db", db, "verify", "user_id=123", "conversation_id=1"]).exit_code == 1


def test_stats_counts_sessions_and_events(db: str) -> None:
    """stats reports the backend and the counts, as a table and as JSON."""
    data = json.loads(run(["--db", db, "stats", "--json"]).stdout)
    assert data["backend"] == "sqlite"
    assert data["sessions"] == 2 and data["events"] == 7 and data["last_position"] == 7
    table = run(["--db", db, "stats"]).stdout
    assert "sessions" in table and "backend" in table


def test_the_default_database_is_chatledger_db_in_the_current_directory(
        tmp_path: Path, db_path: Path) -> None:
    """Without --db or CHATLEDGER_URL, ./chatledger.db is used."""
    db_path.rename(tmp_path / "chatledger.db")
    result = run(["sessions", "--json"])
    assert len(json.loads(result.stdout)["sessions"]) == 2


def test_chatledger_url_names_the_database(db: str, monkeypatch: object) -> None:
    """$CHATLEDGER_URL is used when --db is not given."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("CHATLEDGER_URL", db)
    assert len(json.loads(run(["sessions", "--json"]).stdout)["sessions"]) == 2
