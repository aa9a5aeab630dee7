"""A CLI that behaves: reads that never write, options anywhere, honest plurals and times,
strict filters, stdout exports, escaped terminal output, no secrets, safe imports and chat."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    MessageAppended,
    open_store,
)
from chatledger.tools.cli import hoist_global_options
from tests.tools.cli_support import assert_one_line_error, run


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("args", [
    ["sessions"], ["history", "bob"], ["log", "bob"], ["verify"], ["stats"],
    ["export", "--format", "jsonl", "--out", "-"],
])
def test_read_commands_leave_the_database_byte_identical(db: str, db_path: Path,
                                                         args: list[str]) -> None:
    """Every read command leaves the database file's bytes exactly as they were."""
    before = digest(db_path)
    result = run(["--db", db, *args])
    assert result.exit_code == 0, result.output
    assert digest(db_path) == before


def test_verify_on_a_langchain_file_is_refused_and_untouched(tmp_path: Path) -> None:
    """verify on a foreign SQLite file fails with one line and adds no table to it."""
    path = tmp_path / "memory.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE message_store (id INTEGER PRIMARY KEY, session_id TEXT, "
                 "message TEXT)")
    conn.commit()
    conn.close()
    before = digest(path)
    assert_one_line_error(run(["--db", str(path), "verify"]), "not a chatledger database")
    assert digest(path) == before


def test_init_creates_a_ledger_and_reads_then_work(tmp_path: Path) -> None:
    """init makes an empty ledger that the read commands accept."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = run(["--db", url, "init"])
    assert result.exit_code == 0 and "0 events" in result.stdout
    assert run(["--db", url, "verify"]).exit_code == 0
    assert run(["--db", url, "init"]).exit_code == 0  # again: left as it is


@pytest.mark.postgres
def test_a_missing_postgres_schema_is_named_and_init_creates_it(postgres_db: str) -> None:
    """Reads on a ?schema= that does not exist fail (exit 2) saying so and create nothing;
    `chatledger init` creates the schema and its ledger, and the reads then work."""
    import psycopg

    from tests.pgsupport import postgres_url

    schema = postgres_db.rpartition("schema=")[2]

    def exists() -> bool:
        with psycopg.connect(postgres_url()) as conn:
            return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                (schema,)).fetchone() is not None

    for command in (["history", "s"], ["sessions"], ["verify"], ["log", "s"], ["stats"]):
        assert_one_line_error(run(["--db", postgres_db, *command]), f"schema '{schema}'",
                              "does not exist", "nothing was created", "chatledger init")
    assert not exists()
    done = run(["--db", postgres_db, "init"])
    assert done.exit_code == 0 and "0 events" in done.stdout, done.output
    assert exists()
    assert run(["--db", postgres_db, "sessions"]).exit_code == 0
    assert run(["--db", postgres_db, "verify"]).exit_code == 0


@pytest.mark.parametrize("args", [
    ["sessions", "--db", "{db}"],
    ["history", "bob", "--db", "{db}", "-v"],
    ["verify", "--db={db}", "--debug"],
    ["log", "--log-json", "bob", "--db", "{db}"],
])
def test_global_options_work_after_the_subcommand(db: str, args: list[str]) -> None:
    """--db, -v, --debug and --log-json are accepted after the command name too."""
    result = run([a.replace("{db}", db) for a in args])
    assert result.exit_code == 0, result.output


def test_options_after_a_double_dash_stay_where_they_are() -> None:
    """Nothing after ``--`` is moved."""
    assert hoist_global_options(["history", "--", "--db", "x"]) == ["history", "--", "--db", "x"]
    assert hoist_global_options(["log", "k", "-vv", "--db", "u"]) == ["-vv", "--db", "u", "log", "k"]


def test_a_subcommand_option_value_that_looks_global_stays(
        db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out -v`` writes a file named -v: the value of a command's option never moves."""
    monkeypatch.chdir(tmp_path)
    result = run(["--db", db, "export", "--format", "jsonl", "--out", "-v", "--debug"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "-v").exists()
    assert hoist_global_options(["export", "--out", "-v"], frozenset({"--out"})) == [
        "export", "--out", "-v"]


def test_export_to_dash_writes_stdout_and_no_file(db: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--out - streams the export to stdout and creates no file named '-'."""
    monkeypatch.chdir(tmp_path)
    result = run(["--db", db, "export", "--format", "jsonl", "--out", "-"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 7 and lines[0]["stream_id"]
    assert not (tmp_path / "-").exists()
    assert "wrote 7 messages" in result.stderr


def test_export_over_a_private_file_keeps_its_mode(db: str, tmp_path: Path) -> None:
    """Exporting over a 0600 file leaves it 0600 (it used to become 0644)."""
    out = tmp_path / "private.jsonl"
    out.write_text("old")
    out.chmod(0o600)
    assert run(["--db", db, "export", "--format", "jsonl", "--out", str(out)]).exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text() != "old"


def test_log_times_are_full_precision_and_paste_into_as_of(db: str, store: EventStore) -> None:
    """A time shown by log, pasted into --as-of, gives the history after that event."""
    store.append("bob", [MessageAppended(message=HumanMessage("third"))])
    shown = run(["--db", db, "log", "bob"]).stdout.splitlines()
    time_of_v2 = shown[3].split()[3]
    assert "." in time_of_v2 and time_of_v2.endswith("Z")
    result = run(["--db", db, "history", "bob", "--as-of", time_of_v2, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 2


def test_a_time_to_the_second_means_the_end_of_that_second(db: str, store: EventStore) -> None:
    """--as-of with a time cut to the second includes the events recorded within it."""
    stamp = store.read("bob")[-1].recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run(["--db", db, "history", "bob", "--as-of", stamp, "--json"])
    assert json.loads(result.stdout)["version"] == 2


def test_counts_are_singular_for_one(tmp_path: Path) -> None:
    """One message, one session, one event are said in the singular."""
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with open_store(url) as store:
        store.append("solo", [MessageAppended(message=HumanMessage("hi"))])
    assert "1 message" in run(["--db", url, "history", "solo"]).stdout
    assert "1 messages" not in run(["--db", url, "history", "solo"]).stdout
    assert "intact: 1 event in 1 session;" in run(["--db", url, "verify"]).stdout


@pytest.mark.parametrize("command", [["sessions", "user_id"],
                                     ["export", "--format", "jsonl", "--out", "x.jsonl", "bob"]])
def test_a_filter_without_a_name_is_an_error(db: str, command: list[str]) -> None:
    """``sessions user_id`` (a typo) is an error naming the filter, not session_id=user_id."""
    assert_one_line_error(run(["--db", db, *command]), "is not NAME=VALUE")


def test_terminal_control_and_bidi_characters_are_escaped(tmp_path: Path) -> None:
    """ESC/OSC sequences and bidi overrides from messages appear escaped in tables."""
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    evil = "\x1b]0;owned\x07\x1b[31mred \u202etxt.exe"
    with open_store(url) as store:
        store.append("evil", [MessageAppended(message=AIMessage(evil))])
    for args in (["history", "evil"], ["log", "evil"], ["sessions"]):
        out = run(["--db", url, *args]).stdout
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b]0;owned" in run(["--db", url, "history", "evil"]).stdout
    as_json = json.loads(run(["--db", url, "history", "evil", "--json"]).stdout)
    assert as_json["messages"][0]["content"] == evil


def test_no_secret_of_the_url_reaches_an_error() -> None:
    """Passwords in the userinfo, password= and sslpassword= never appear in the error line."""
    url = ("postgresql://app:hunter2pw@127.0.0.1:1/db?sslpassword=sslsecret9"
           "&password=other7pw&connect_timeout=1")
    result = run(["--db", url, "sessions"])
    assert result.exit_code == 2
    for secret in ("hunter2pw", "sslsecret9", "other7pw"):
        assert secret not in result.output


def langchain_rows(path: Path, rows: list[tuple[int, str, str]]) -> None:
    """A LangChain message table without a primary key, holding ``rows``."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE message_store (id INTEGER, session_id TEXT, message TEXT)")
    conn.executemany("INSERT INTO message_store VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


HUMAN = '{"type": "human", "data": {"content": "hi"}}'


@pytest.mark.parametrize("bad_row", [
    (3, "b", HUMAN),  # row 3 of session b repeated whole
    (4, "b", '{"type": "ai", "data": {"content": "x", "additional_kwargs": {"p": NaN}}}'),
    (4, "b", '{"type": "ai", "data": {"content": "x", "additional_kwargs": {"p": 1e999}}}'),
])
def test_an_import_with_one_bad_row_writes_nothing(tmp_path: Path, bad_row: Any) -> None:
    """A repeated row or a non-finite number anywhere in the source fails the import before
    any session is written."""
    source = tmp_path / "memory.db"
    langchain_rows(source, [(1, "a", HUMAN), (2, "a", HUMAN), (3, "b", HUMAN), bad_row])
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert_one_line_error(run(["--db", url, "import", "langchain-sqlite", str(source)]),
                          "nothing was imported")
    with open_store(url) as store:
        assert store.sessions() == []


def test_chat_survives_invalid_utf8_and_saves_the_turn(tmp_path: Path) -> None:
    """Piped bytes that are not UTF-8 are replaced, and the turn is saved."""
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    from click.testing import CliRunner

    from chatledger.tools.cli import cli

    result = CliRunner().invoke(cli, ["--db", url, "chat", "bytes"],
                                input=b"hi \xff\xfe there\n")
    assert result.exit_code == 0, result.output
    with open_store(url) as store:
        first = store.load_history("bytes")[1][0]
    assert first.content == "hi \ufffd\ufffd there"


def test_chat_takes_the_server_from_openai_base_url(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """$OPENAI_BASE_URL selects the OpenAI-compatible model (which then needs --model)."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    assert_one_line_error(run(["--db", url, "chat"], input=""), "$OPENAI_BASE_URL", "--model")


def test_a_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, a PostgreSQL URL names the chatledger[postgres] extra to install."""
    real_import = builtins.__import__

    def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("psycopg"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    modules = __import__("sys").modules
    for cached in [m for m in modules if m.startswith("chatledger.eventstore.postgres")]:
        monkeypatch.delitem(modules, cached)
    assert_one_line_error(run(["--db", "postgresql://u@h/db", "sessions"]),
                          "pip install 'chatledger[postgres]'")


def test_every_file_mode_is_restored_when_the_export_fails(db: str, tmp_path: Path) -> None:
    """A failed export leaves the old file, its bytes and its mode, as they were."""
    out = tmp_path / "keep.jsonl"
    out.write_text("old")
    out.chmod(0o600)
    result = run(["--db", db, "export", "--format", "jsonl", "--out", str(out), "nobody=here"])
    assert result.exit_code == 2
    assert out.read_text() == "old" and out.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path).count("keep.jsonl") == 1


@pytest.mark.parametrize("args", [["sessions"], ["history", "bob"], ["log", "bob"], ["stats"],
                                  ["verify"]])
def test_nl_prints_one_json_object_per_row(db: str, args: list[str]) -> None:
    """--nl (before or after the command) prints JSON lines, one per table row."""
    for where in ([*args, "--nl"], ["--nl", *args]):
        result = run(["--db", db, *where])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert all(isinstance(r, dict) for r in rows)
        if args[0] != "verify":
            assert rows


@pytest.mark.parametrize(("args", "option"), [
    (["head"], "--nl"), (["prove", "1"], "--csv"), (["replay", "bob", "--chain", "x:y"], "--csv"),
    (["demo"], "--json"), (["demo"], "--nl"), (["import", "langchain-sqlite", "m.db"], "--nl"),
])
def test_a_format_a_command_cannot_print_is_refused_before_or_after_it(
        db: str, args: list[str], option: str) -> None:
    """--json, --nl or --csv on a command without that output is one error line, either side."""
    messages = set()
    for where in ([option, *args], [*args, option]):
        result = run(["--db", db, *where])
        assert_one_line_error(result, f"{option}: `{args[0]}`")
        assert result.stdout == ""
        messages.add(result.stderr)
    assert len(messages) == 1


def test_version_works_after_the_subcommand_too(db: str) -> None:
    """``chatledger sessions --version`` prints the version, as ``chatledger --version`` does."""
    before, after = run(["--version"]), run(["--db", db, "sessions", "--version"])
    assert after.exit_code == 0 and after.stdout == before.stdout
    assert after.stdout.startswith("chatledger, version ")
    assert hoist_global_options(["erase", "k", "--version", "2"], frozenset({"--version"})) == [
        "erase", "k", "--version", "2"]


@pytest.mark.parametrize("args", [
    ["export", "--format", "jsonl"], ["export", "--format", "openai"],
    ["export", "--format", "otel"], ["head"],
])
@pytest.mark.parametrize("target", ["ledger.db", "link-to-ledger", "./ledger.db-wal",
                                    "ledger.db-journal"])
def test_out_naming_the_database_being_read_is_refused_and_writes_nothing(
        db_path: Path, args: list[str], target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out that is the ledger itself (by any name, through a link) or one of SQLite's files
    beside it is one error line, exit 2, before anything is written: the ledger stays intact."""
    monkeypatch.chdir(db_path.parent)
    os.symlink("ledger.db", "link-to-ledger")
    before = digest(db_path)
    files = set(os.listdir())
    result = run(["--db", "sqlite:///ledger.db", *args, "--out", target])
    assert_one_line_error(result, f"--out {target!r}", "ledger.db", "choose another file")
    assert digest(db_path) == before
    assert set(os.listdir()) - files <= {"ledger.db-wal", "ledger.db-shm"}  # opened, as reads do
    assert run(["--db", "sqlite:///ledger.db", "verify"]).exit_code == 0


def test_csv_prints_a_header_and_quoted_rows(db: str) -> None:
    """--csv prints a header and one row per message, commas and quotes quoted."""
    import csv
    import io

    result = run(["--db", db, "history", "bob", "--csv"])
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["index", "role", "content"]
    assert rows[2] == ["2", "assistant", "Nice to meet you, Bob!"]
    sessions = list(csv.DictReader(io.StringIO(run(["--db", db, "--csv", "sessions"]).stdout)))
    assert {s["stream_id"] for s in sessions} == {"session_id=bob",
                                                  "conversation_id=1/user_id=123"}


def test_csv_cells_cannot_start_a_spreadsheet_formula(tmp_path: Path) -> None:
    """A message starting with = is written as text ('=...), not as a formula."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    with open_store(url) as store:
        store.append("f", [MessageAppended(message=HumanMessage("=HYPERLINK(\"x\")"))])
    out = run(["--db", url, "history", "f", "--csv"]).stdout
    assert "'=HYPERLINK" in out


def test_csv_keeps_a_carriage_return_inside_its_cell_and_guards_tab_and_cr_starts(
        tmp_path: Path) -> None:
    """A cell holding a lone carriage return is quoted, so a reader that takes one as a line
    break keeps the text after it in the same cell (it would start a row of its own, a formula
    unguarded); cells starting with a tab or a carriage return get the leading quote too."""
    import csv

    url = f"sqlite:///{tmp_path / 'cr.db'}"
    with open_store(url) as store:
        store.append("cr", [MessageAppended(message=HumanMessage("hello\r=2+5")),
                            MessageAppended(message=HumanMessage("\t=1+1")),
                            MessageAppended(message=HumanMessage("\r=3+3"))])
    result = run(["--db", url, "history", "cr", "--csv"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "history.csv"
    out.write_bytes(result.stdout_bytes)
    with open(out, encoding="utf-8") as f:  # universal newlines: "\r" ends a line here
        rows = list(csv.reader(f))
    assert [r[2] for r in rows[1:]] == ["hello\n=2+5", "'\t=1+1", "'\n=3+3"]
    assert all(len(r) == 3 for r in rows)
    assert not any(cell[:1] in ("=", "+", "@") for r in rows for cell in r)



def test_a_version_1_ledger_is_read_only_after_init_upgrades_it(tmp_path: Path) -> None:
    """A schema-version-1 file: verify refuses it untouched and names init; init upgrades it;
    then verify passes."""
    from tests.eventstore.test_log_heads import _downgrade_to_v1

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.append("old", [MessageAppended(message=HumanMessage("one"))])
    _downgrade_to_v1(path)
    before = digest(path)
    assert_one_line_error(run(["--db", url, "verify"]), "schema version 1", "chatledger init")
    assert digest(path) == before
    assert run(["--db", url, "init"]).exit_code == 0
    assert run(["--db", url, "verify"]).exit_code == 0
