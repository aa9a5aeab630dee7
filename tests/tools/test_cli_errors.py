"""Errors end as one clear line on stderr, exit status 2, no traceback, and nothing written."""

from __future__ import annotations

import builtins
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from chatledger.eventstore import EventStore
from chatledger.tools import _read
from tests.tools.cli_support import assert_one_line_error, run


def test_a_bad_url_scheme_is_one_line(tmp_path: Path) -> None:
    """An unknown URL scheme names the URL and the schemes that work."""
    assert_one_line_error(run(["--db", "mysql://db/x", "sessions"]), "mysql://db/x",
                          "sqlite:///path.db")


def test_a_missing_directory_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    """A database in a directory that does not exist is refused; the directory stays absent."""
    missing = tmp_path / "nope" / "x.db"
    assert_one_line_error(run(["--db", f"sqlite:///{missing}", "demo"]), "does not exist")
    assert not missing.parent.exists()


def test_a_missing_database_file_is_not_created_by_a_read(tmp_path: Path) -> None:
    """A read command on a mistyped path fails and leaves no empty database behind."""
    path = tmp_path / "typo.db"
    assert_one_line_error(run(["--db", str(path), "sessions"]), "no chatledger database")
    assert not path.exists()


def test_a_corrupt_database_is_one_line_and_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite is refused and not modified."""
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    assert_one_line_error(run(["--db", str(path), "sessions"]), "corrupt.db")
    assert path.read_bytes() == garbage
    assert sorted(os.listdir(tmp_path)) == ["corrupt.db"]


@pytest.mark.parametrize("arg", ["user id=1", "=x", "9=1"])
def test_bad_key_syntax_is_one_line(db: str, arg: str) -> None:
    """A key argument that is not name=value names the argument and the expected form."""
    assert_one_line_error(run(["--db", db, "history", arg]), repr(arg), "name=value")


def test_a_bad_key_value_is_one_line(db: str) -> None:
    """A key part with a control character is refused by the key rules, in one line."""
    assert_one_line_error(run(["--db", db, "history", "user_id=a\x01b"]), "control character")


@pytest.mark.parametrize("value,needle", [
    ("yesterday", "neither a version number nor an ISO 8601 time"),
    ("2024-05-01T12:00:00", "has no time zone"),
    ("-1", "neither a version number"),
])
def test_a_bad_as_of_is_one_line_naming_the_expected_format(db: str, value: str,
                                                            needle: str) -> None:
    """--as-of that is neither a version nor a zoned ISO time says which format is expected."""
    assert_one_line_error(run(["--db", db, "history", "bob", "--as-of", value]), needle,
                          "2024-05-01T12:00:00Z")


@pytest.mark.parametrize("value,needle", [
    ("9" * 5000, "is too large: at most 2**63 - 1"),
    ("9223372036854775808", "is too large: at most 2**63 - 1"),
    ("9999-12-31T23:59:59-01:00", "is out of range"),
    ("0001-01-01T00:00:00+01:00", "is out of range"),
    ("\u00b2", "neither a version number nor an ISO 8601 time"),
    ("\u0663", "neither a version number nor an ISO 8601 time"),
])
def test_an_absurd_as_of_is_one_line_naming_the_option_and_value(db: str, value: str,
                                                                 needle: str) -> None:
    """Versions past what the store keeps (however many digits), times that leave the
    calendar once in UTC, and digits that are not ASCII: one line naming --as-of and the
    value (cut short when long), never an unexpected error."""
    result = run(["--db", db, "history", "bob", "--as-of", value])
    assert_one_line_error(result, "--as-of", repr(value[:40]), needle)
    assert "unexpected" not in result.stderr and len(result.stderr) < 300


def test_verify_against_an_endless_file_is_one_line(db: str, tmp_path: Path) -> None:
    """--against /dev/zero (or any file longer than a head can be) is refused after reading
    at most a head's worth, not read until memory runs out."""
    def cap_memory() -> None:  # a read without limit then fails this test, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, resource.getrlimit(
            resource.RLIMIT_AS)[1]))

    done = subprocess.run([sys.executable, "-P", "-m", "chatledger.tools", "--db", db, "verify",
                           "--against", "/dev/zero"], preexec_fn=cap_memory,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "Error: --against '/dev/zero' is not a log head: a head file is at most 65,536 bytes, "
        "this one is longer"]
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 40_000 + "0]")
    assert_one_line_error(run(["--db", db, "prove", "1", "--against", str(big)]),
                          "not a log head")


def test_a_head_with_a_size_no_database_can_hold_is_one_line(db: str, tmp_path: Path) -> None:
    """A head file whose size is past 64 bits is refused as not a head, in one line."""
    head = tmp_path / "huge.json"
    head.write_text('{"size": 99999999999999999999999, "root": "' + "a" * 64 + '", '
                    '"position": 1, "recorded_at": "2024-01-01T00:00:00Z"}')
    result = run(["--db", db, "verify", "--against", str(head)])
    assert_one_line_error(result, "huge.json", "log head")
    assert "unexpected" not in result.stderr


def test_sessions_limit_past_what_the_store_keeps_names_the_value_typed(db: str) -> None:
    """--limit 10**30 is refused naming 10**30, the value typed (not one more)."""
    result = run(["--db", db, "sessions", "--limit", str(10**30)])
    assert_one_line_error(result, "--limit", str(10**30))
    assert str(10**30 + 1) not in result.stderr
    assert run(["--db", db, "sessions", "--limit", str(2**63 - 1)]).exit_code == 0


def test_an_as_of_version_beyond_the_head_is_one_line(db: str) -> None:
    """--as-of 99 on a session at version 2 says the version does not exist yet."""
    assert_one_line_error(run(["--db", db, "history", "bob", "--as-of", "99"]), "version 99")


@pytest.mark.parametrize("command", [["history"], ["log"], ["verify"], ["erase", "--yes"],
                                     ["fork", "--to", "other"]])
def test_an_unknown_session_is_one_line(db: str, store: EventStore,
                                        command: list[str]) -> None:
    """Commands given a key with no events say so, and write nothing."""
    before = store.last_position()
    args = ["--db", db, command[0], "ghost", *command[1:]]
    assert_one_line_error(run(args), "no session 'session_id=ghost'")
    assert store.last_position() == before


def test_a_click_usage_error_is_one_line(db: str) -> None:
    """A missing argument is one line that points at the command's help."""
    assert_one_line_error(run(["--db", db, "history"]), "Missing argument",
                          "chatledger history --help")


def test_an_unknown_option_is_one_line(db: str) -> None:
    """An unknown option is one line too."""
    assert_one_line_error(run(["--db", db, "sessions", "--bogus"]), "--bogus")


def test_erase_without_yes_refuses_and_keeps_the_content(db: str, store: EventStore) -> None:
    """erase without --yes erases nothing."""
    assert_one_line_error(run(["--db", db, "erase", "bob"]), "--yes")
    assert store.load_history("bob")[1][0].text == "hi im bob!"


def test_missing_pyarrow_is_one_line_and_writes_no_file(db: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet export without pyarrow says how to install it and leaves no file."""
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    out = tmp_path / "out.parquet"
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(run(["--db", db, "export", "--format", "parquet", "--out", str(out)]),
                          "pip install 'chatledger[parquet]'")
    # SQLite readers of a WAL database may leave its -wal/-shm companions; nothing else.
    after = [name for name in os.listdir(tmp_path) if not name.endswith(("-wal", "-shm"))]
    assert sorted(after) == before


def test_an_export_into_a_missing_directory_is_one_line(db: str, tmp_path: Path) -> None:
    """--out in a directory that does not exist names the directory."""
    assert_one_line_error(run(["--db", db, "export", "--format", "jsonl", "--out",
                               str(tmp_path / "no" / "x.jsonl")]), "directory does not exist")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug is reported in one line; --debug adds the traceback."""
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(_read, "table", broken)
    assert_one_line_error(run(["--db", db, "sessions"]), "unexpected RuntimeError: boom",
                          "--debug")
    result = run(["--db", db, "--debug", "sessions"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


def test_every_command_has_help() -> None:
    """Every command (and subcommand) has a help text with an example, and --help works."""
    from chatledger.tools.cli import cli

    def walk(group: click.Group, path: list[str]) -> list[tuple[list[str], click.Command]]:
        found = []
        for name, command in group.commands.items():
            found.append(([*path, name], command))
            if isinstance(command, click.Group):
                found += walk(command, [*path, name])
        return found

    commands = walk(cli, [])
    assert {" ".join(p) for p, _ in commands} >= {
        "sessions", "history", "log", "verify", "stats", "export", "import",
        "import langchain-sqlite", "fork", "rebuild", "erase", "demo", "chat", "replay"}
    for path, command in commands:
        assert command.help and command.help.strip(), path
        if not isinstance(command, click.Group):
            assert "Example: chatledger " in command.help, path
        result = run([*path, "--help"])
        assert result.exit_code == 0, path
        assert result.stdout.startswith("Usage: chatledger " + " ".join(path)), path
