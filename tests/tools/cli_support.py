"""Helpers for the command-line tests: run the CLI, check errors, build and tamper with logs."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    MessageAppended,
    SessionKey,
    SystemMessage,
    ToolMessage,
)
from chatledger.tools.cli import cli

ALICE = SessionKey(user_id="123", conversation_id="1")
BOB = SessionKey(session_id="bob")


def run(args: Sequence[str], *, input: str | None = None) -> Result:
    """Invoke ``chatledger`` in-process with ``args``."""
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result: Result, *needles: str) -> None:
    """The command failed with exit status 2 and exactly one clear line on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def populate(store: EventStore) -> None:
    """Two sessions: a composite-key one with tool calls and non-ASCII text, and a plain one."""
    store.append(ALICE, [
        MessageAppended(message=SystemMessage(content="You are terse.")),
        MessageAppended(message=HumanMessage(content="Wie spät ist es in Zürich? 🕰")),
    ])
    store.append(ALICE, [
        MessageAppended(message=AIMessage(content="", tool_calls=[
            {"name": "clock", "args": {"city": "Zürich"}, "id": "call_1"}])),
        MessageAppended(message=ToolMessage(content="14:05", tool_call_id="call_1")),
        MessageAppended(message=AIMessage(content="Es ist 14:05.")),
    ])
    store.append(BOB, [MessageAppended(message=HumanMessage(content="hi im bob!")),
                       MessageAppended(message=AIMessage(content="Nice to meet you, Bob!"))])


def tamper(path: Path, stream_id: str, version: int) -> None:
    """Edit one stored payload by hand, the way an attacker with file access would."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET data = replace(data, 'Es ist', 'Es war') "
                 "WHERE stream_id = ? AND version = ?", (stream_id, version))
    conn.commit()
    conn.close()
