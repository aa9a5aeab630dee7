"""The SQLite schema is plain tables that other tools (sqlite-utils, Datasette) read directly."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from chatledger.eventstore import AIMessage, HumanMessage, SessionKey, open_store
from chatledger.projections import ChatHistory


def test_sqlite_utils_reads_the_log_and_the_catalog(tmp_path: Path) -> None:
    """sqlite-utils opens the file and finds every event, the key parts and the history rows."""
    path = tmp_path / "log.db"
    with open_store(f"sqlite:///{path}") as store:
        ChatHistory(SessionKey(user_id="123", conversation_id="1"), store).add_messages(
            [HumanMessage("hi"), AIMessage("hello")])
        assert store.stats()["rows"]["events"] == 2
    db = sqlite_utils.Database(path)
    assert {"events", "streams", "stream_keys", "history", "clears", "checkpoints"} <= set(
        db.table_names())
    assert [r["type"] for r in db["events"].rows_where(order_by="position")] == [
        "message_appended", "message_appended"]
    assert sorted((r["name"], r["value"]) for r in db["stream_keys"].rows) == [
        ("conversation_id", "1"), ("user_id", "123")]
    assert db["history"].count == 2
    assert "STRICT" in db["events"].schema
