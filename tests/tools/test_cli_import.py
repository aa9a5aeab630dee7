"""import langchain-sqlite: a real SQLChatMessageHistory database, imported once, order kept."""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path

import pytest

from chatledger.eventstore import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    open_store,
)
from tests.tools.cli_support import run


def langchain_db(path: Path, sessions: dict[str, list[object]]) -> None:
    """Write sessions with LangChain's own SQLChatMessageHistory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community warns that it is being sunset
        from langchain_community.chat_message_histories import SQLChatMessageHistory

        for session_id, messages in sessions.items():
            history = SQLChatMessageHistory(session_id, connection=f"sqlite:///{path}")
            history.add_messages(messages)  # type: ignore[arg-type]
            history.engine.dispose()


def lc_messages() -> dict[str, list[object]]:
    """Two interleaved-by-id sessions with tool calls and non-ASCII text."""
    from langchain_core import messages as lc

    return {
        "abc": [
            lc.SystemMessage("Réponds en français."),
            lc.HumanMessage("Quel temps fait-il à Zürich? ☔"),
            lc.AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Zürich"},
                                          "id": "call_7"}]),
            lc.ToolMessage("12°C, pluie", tool_call_id="call_7"),
            lc.AIMessage("Il pleut, 12°C."),
        ],
        "日本": [lc.HumanMessage("こんにちは"), lc.AIMessage("こんにちは!")],
    }


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A LangChain SQLite database with two sessions."""
    path = tmp_path / "memory.db"
    langchain_db(path, lc_messages())
    return path


def test_import_keeps_every_message_in_order(source: Path, tmp_path: Path) -> None:
    """Each session's messages arrive in id order, tool calls and non-ASCII text intact."""
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(["--db", db, "import", "langchain-sqlite", str(source)])
    assert result.exit_code == 0, result.output
    assert "imported 7 messages into 2 sessions" in result.stdout
    with open_store(db) as store:
        _, abc = store.load_history("abc")
        assert abc == [
            SystemMessage(content="Réponds en français."),
            HumanMessage(content="Quel temps fait-il à Zürich? ☔"),
            AIMessage(content="", tool_calls=[{"name": "weather", "args": {"city": "Zürich"},
                                               "id": "call_7", "type": "tool_call"}]),
            ToolMessage(content="12°C, pluie", tool_call_id="call_7"),
            AIMessage(content="Il pleut, 12°C."),
        ]
        assert [m.text for m in store.load_history("日本")[1]] == ["こんにちは", "こんにちは!"]
        assert store.verify().ok


def test_import_twice_adds_nothing(source: Path, tmp_path: Path) -> None:
    """The second run finds every row already imported and appends no event."""
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run(["--db", db, "import", "langchain-sqlite", str(source)])
    with open_store(db) as store:
        before = store.last_position()
    result = run(["--db", db, "--json", "import", "langchain-sqlite", str(source)])
    summary = json.loads(result.stdout)
    assert summary["imported"] == 0 and summary["already_present"] == 7
    with open_store(db) as store:
        assert store.last_position() == before
        assert len(store.load_history("abc")[1]) == 5


def test_a_copied_database_imports_as_the_same_rows(source: Path, tmp_path: Path) -> None:
    """Event ids do not depend on the file's path: a copy elsewhere imports nothing new."""
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run(["--db", db, "import", "langchain-sqlite", str(source)])
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    summary = json.loads(run(["--db", db, "--json", "import", "langchain-sqlite",
                              str(copy)]).stdout)
    assert summary["imported"] == 0


def test_rows_added_later_are_appended_after_the_imported_ones(source: Path,
                                                               tmp_path: Path) -> None:
    """Re-importing after the app wrote more rows imports only the new rows, at the end."""
    from langchain_core import messages as lc

    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run(["--db", db, "import", "langchain-sqlite", str(source)])
    langchain_db(source, {"abc": [lc.HumanMessage("Merci!")]})
    summary = json.loads(run(["--db", db, "--json", "import", "langchain-sqlite",
                              str(source)]).stdout)
    assert summary["imported"] == 1 and summary["already_present"] == 7
    with open_store(db) as store:
        assert [m.text for m in store.load_history("abc")[1]][-2:] == ["Il pleut, 12°C.",
                                                                        "Merci!"]


def test_a_bad_row_imports_nothing(source: Path, tmp_path: Path) -> None:
    """A row whose message is not a LangChain message stops the import before any write."""
    conn = sqlite3.connect(source)
    conn.execute("INSERT INTO message_store (session_id, message) VALUES ('zzz', 'not json')")
    conn.commit()
    conn.close()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(["--db", db, "import", "langchain-sqlite", str(source)])
    assert result.exit_code == 2
    assert "row id=8 (session 'zzz')" in result.stderr and "nothing was imported" in result.stderr
    with open_store(db) as store:
        assert store.last_position() == 0


def test_a_missing_table_names_the_option(source: Path, tmp_path: Path) -> None:
    """--table naming no table says so and points at the option."""
    result = run(["--db", f"sqlite:///{tmp_path / 'l.db'}", "import", "langchain-sqlite",
                  str(source), "--table", "chat_history"])
    assert result.exit_code == 2 and "no table 'chat_history'" in result.stderr


def test_a_missing_source_file_is_one_line(tmp_path: Path) -> None:
    """A source path that does not exist is one clear line."""
    result = run(["--db", f"sqlite:///{tmp_path / 'l.db'}", "import", "langchain-sqlite",
                  str(tmp_path / "nope.db")])
    assert result.exit_code == 2 and "no LangChain database at" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_row_without_a_session_id_imports_nothing(source: Path, tmp_path: Path) -> None:
    """A NULL session id is named as bad input; nothing is written."""
    conn = sqlite3.connect(source)
    conn.execute("INSERT INTO message_store (session_id, message) VALUES (NULL, '{}')")
    conn.commit()
    conn.close()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = run(["--db", db, "import", "langchain-sqlite", str(source)])
    assert result.exit_code == 2 and "session_id is None, not text" in result.stderr
    with open_store(db) as store:
        assert store.last_position() == 0
