"""The installed ``chatledger`` console script, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatledger.eventstore import open_store
from tests.tools.cli_support import ALICE, run, tamper

CHATLEDGER = Path(sys.executable).with_name("chatledger")


def chatledger(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script with a clean environment (no CHATLEDGER_URL)."""
    env = {k: v for k, v in os.environ.items() if k != "CHATLEDGER_URL"}
    return subprocess.run([str(CHATLEDGER), *args], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=120)


def test_demo_runs_in_a_fresh_directory_twice(tmp_path: Path) -> None:
    """`chatledger demo` works on ./chatledger.db from nothing, and again on the same file."""
    for _ in range(2):
        done = chatledger("demo", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Your name is Bob." in done.stdout
        assert "I'm sorry, I don't know your name." in done.stdout
        assert done.stderr == ""
    assert (tmp_path / "chatledger.db").exists()


def test_verify_exit_status_follows_the_log(tmp_path: Path, db_path: Path) -> None:
    """verify exits 0 on an intact log, 1 after a hand edit, naming the edited row."""
    ok = chatledger("--db", str(db_path), "verify", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    with open_store(f"sqlite:///{db_path}") as store:
        position = store.read(ALICE)[4].position
    tamper(db_path, ALICE.stream_id, 5)
    bad = chatledger("--db", str(db_path), "verify", cwd=tmp_path)
    assert bad.returncode == 1
    assert f"{ALICE.stream_id}  5        {position}" in bad.stdout
    assert "altered" in bad.stdout


def test_an_error_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    """A corrupt database gives exit status 2 and one line on stderr, in a real process."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00junk" * 200)
    done = chatledger("--db", str(path), "history", "abc", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ")
    assert "Traceback" not in done.stderr


def test_chat_reads_piped_input(tmp_path: Path) -> None:
    """Piped lines are a conversation that persists between processes."""
    first = chatledger("chat", "me", cwd=tmp_path, input="hi im bob!\n")
    assert first.returncode == 0, first.stderr
    again = chatledger("chat", "me", cwd=tmp_path, input="whats my name?\n")
    assert "assistant> Your name is Bob." in again.stdout


def test_log_json_logging_goes_to_stderr_only(tmp_path: Path, db_path: Path) -> None:
    """With -v --log-json, log lines are JSON on stderr and stdout stays the command's output."""
    done = chatledger("--db", str(db_path), "-v", "--log-json", "verify", "--json",
                      cwd=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout)["ok"] is True
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(e.get("event") == "verified" and e.get("level") == "info" for e in events)


@pytest.mark.postgres
def test_the_commands_work_on_postgresql(tmp_path: Path, postgres_db: str) -> None:
    """--db postgresql://… runs the demo, lists, verifies and exports like SQLite does."""
    assert run(["--db", postgres_db, "demo"]).exit_code == 0
    listed = json.loads(run(["--db", postgres_db, "--json", "sessions", "--limit", "50"]).stdout)
    assert len(listed["sessions"]) == 10
    assert run(["--db", postgres_db, "verify"]).exit_code == 0
    out = tmp_path / "pg.jsonl"
    assert run(["--db", postgres_db, "export", "--format", "openai", "--out",
                str(out)]).exit_code == 0
    assert len(out.read_text().splitlines()) == 10
