"""``chatledger serve``: its options, its defaults, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from chatledger.eventstore import open_store
from tests.tools.cli_support import assert_one_line_error, run
from tests.tools.serve.support import MAIN, populate

HOSTS = ("127.0.0.1:8765", "localhost:8765", "attacker.example:8765", "192.0.2.7:9001",
         "[::1]:8765", "[::1]", "127.0.0.2:8765", "127.0.0.2", "attacker.example")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``uvicorn.run`` was called with, and what the app answered for the list page
    under each Host header while the command was running (instead of serving)."""
    calls: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        calls.update(options)
        for host in HOSTS:
            calls[host] = TestClient(app, base_url=f"http://{host}").get("/")
    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


@pytest.fixture
def db(tmp_path: Path) -> str:
    """The URL of a populated SQLite ledger."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_store(url) as store:
        populate(store)
    return url


def test_serve_binds_loopback_port_8765_by_default(served: dict[str, Any], db: str) -> None:
    """Without options: 127.0.0.1:8765, the app answers for localhost and refuses other hosts."""
    result = run(["--db", db, "serve"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    assert "read-only at http://127.0.0.1:8765/" in result.stderr
    shown = MAIN.stream_id.replace("=", "%3D").replace("/", "%2F")
    assert shown in served["127.0.0.1:8765"].text and shown in served["localhost:8765"].text
    assert served["attacker.example:8765"].status_code == 400


def test_serve_takes_db_host_and_port_after_the_command(served: dict[str, Any], db: str,
                                                        tmp_path: Path) -> None:
    """--db, --host and --port after ``serve``; a non-loopback address warns and allows any host."""
    result = run(["--db", str(tmp_path / "missing.db"), "serve", "--db", db,
                  "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 9001)
    assert "Warning: listening on 0.0.0.0" in result.stderr
    assert served["192.0.2.7:9001"].status_code == 200


@pytest.mark.parametrize("host,own", [("::1", ("[::1]:8765", "[::1]")),
                                      ("127.0.0.2", ("127.0.0.2:8765", "127.0.0.2"))])
def test_every_loopback_host_answers_to_its_own_address_only(
        served: dict[str, Any], db: str, host: str, own: tuple[str, str]) -> None:
    """A loopback --host other than the default answers to its own address (bracketed for
    IPv6, with and without port) and localhost, refuses every other name (DNS rebinding:
    a page elsewhere resolving its name to this address), and warns of nothing."""
    result = run(["--db", db, "serve", "--host", host])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    for name in (*own, "localhost:8765"):
        assert served[name].status_code == 200, name
    for name in ("attacker.example:8765", "attacker.example", "127.0.0.1:8765", "192.0.2.7:9001"):
        assert served[name].status_code == 400, name


def test_serve_refuses_a_missing_database(served: dict[str, Any], tmp_path: Path) -> None:
    """A --db that does not exist is one error line, exit 2, and creates no file."""
    missing = tmp_path / "nope.db"
    result = run(["serve", "--db", f"sqlite:///{missing}"])
    assert_one_line_error(result, "no chatledger database")
    assert not missing.exists() and not served


def test_serve_has_help() -> None:
    """``chatledger serve --help`` documents the options and the read-only promise."""
    result = run(["serve", "--help"])
    assert result.exit_code == 0
    for needle in ("--db", "--host", "--port", "127.0.0.1", "8765", "Read-only"):
        assert needle in result.stdout
