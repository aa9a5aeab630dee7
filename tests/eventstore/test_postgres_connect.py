"""PostgreSQL: bad URLs, refused logins and missing privileges give one clear, password-free error."""

from __future__ import annotations

import socket
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from chatledger.eventstore import HumanMessage, MessageAppended, StoreError, open_store
from chatledger.eventstore.postgres._url import parse_url, redact
from tests.pgsupport import postgres_schema_url, postgres_test_schema, postgres_url

pytestmark = pytest.mark.postgres

SECRET = "s3cr3t-Passw0rd"


def _server() -> tuple[str, str, str]:
    """Host, port and database of the test server."""
    params = conninfo_to_dict(postgres_url())
    return (str(params.get("host", "127.0.0.1")), str(params.get("port", "5432")),
            str(params.get("dbname", "test")))


def _open_fails(url: str, *, create: bool = False) -> str:
    """Open ``url``, expecting a StoreError; return its message and the whole traceback text."""
    with pytest.raises(StoreError) as info:
        open_store(url, create=create)
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text
    assert SECRET not in repr(info.value.__cause__)
    return str(info.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bare_role() -> Iterator[str]:
    """A login role with no privilege beyond what PUBLIC has."""
    name = f"chatledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_unknown_role_names_the_url_without_the_password() -> None:
    """A login that is refused raises StoreError naming the URL with the password masked."""
    host, port, db = _server()
    message = _open_fails(f"postgresql://chatledger_no_such_role:{SECRET}@{host}:{port}/{db}")
    assert f"postgresql://chatledger_no_such_role:***@{host}:{port}/{db}" in message
    assert "chatledger_no_such_role" in message and "does not exist" in message


def test_unreachable_server_names_the_url_without_the_password() -> None:
    """A closed port raises StoreError saying the server cannot be reached."""
    port = _free_port()
    message = _open_fails(f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/test")
    assert message.startswith(f"cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:{port}/test")
    assert "refused" in message.lower()


def test_missing_database_is_named() -> None:
    """A database that does not exist raises StoreError naming it."""
    host, port, _ = _server()
    message = _open_fails(f"postgres://postgres:{SECRET}@{host}:{port}/chatledger_no_such_db")
    assert "chatledger_no_such_db" in message and "does not exist" in message


def test_role_without_create_privilege_is_refused_clearly(bare_role: str, tmp_path: Path) -> None:
    """A role that may not create tables or schemas gets StoreError naming the URL, not a crash:
    at open with create=True, at the first append otherwise (opening writes nothing)."""
    host, port, db = _server()
    base = f"postgresql://{bare_role}:{SECRET}@{host}:{port}/{db}"
    message = _open_fails(base, create=True)
    assert "cannot set up the chatledger tables" in message and "permission denied" in message
    assert f"{bare_role}:***@" in message
    with open_store(base) as store:
        with pytest.raises(StoreError, match="permission denied") as info:
            store.append("s", [MessageAppended(message=HumanMessage("hi"))])
        assert f"{bare_role}:***@" in str(info.value) and SECRET not in str(info.value)
    schema = postgres_test_schema(tmp_path)
    message = _open_fails(f"{base}?schema={schema}", create=True)
    assert "permission denied" in message
    with psycopg.connect(postgres_url()) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (schema,)).fetchone() is None


def test_role_without_write_privilege_can_open_but_not_append(bare_role: str,
                                                               tmp_path: Path) -> None:
    """Given read-only grants on an existing schema, reads work and an append is a StoreError."""
    url = postgres_schema_url(postgres_test_schema(tmp_path))
    with open_store(url) as owner:
        owner.append("s", [MessageAppended(message=HumanMessage("hi"))])
        schema = owner.stats()["schema"]
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; "
                             "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
            s=sql.Identifier(schema), r=sql.Identifier(bare_role)))
    host, port, db = _server()
    reader_url = f"postgresql://{bare_role}:{SECRET}@{host}:{port}/{db}?schema={schema}"
    try:
        with open_store(reader_url) as reader:
            assert reader.load_history("s")[0] == 1
            with pytest.raises(StoreError) as info:
                reader.append("s", [MessageAppended(message=HumanMessage("no"))])
            assert "permission denied" in str(info.value)
            assert SECRET not in str(info.value)
            assert reader.version("s") == 1
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}; "
                                 "REVOKE USAGE ON SCHEMA {s} FROM {r}").format(
                s=sql.Identifier(schema), r=sql.Identifier(bare_role)))


@pytest.mark.parametrize("query, words", [
    ("schema=Bad-Name", "lowercase identifier"),
    ("schema=pg_mine", "lowercase identifier"),
    ("pool_size=0", "pool_size"),
    ("pool_size=many", "pool_size"),
    ("no_such_param=1", "no_such_param"),
])
def test_bad_url_parameters_are_named(query: str, words: str) -> None:
    """Invalid schema, pool_size or libpq parameters raise StoreError naming them."""
    message = _open_fails(f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test?{query}")
    assert words in message


def test_password_in_a_malformed_url_is_not_echoed() -> None:
    """libpq quotes the token it cannot parse; the password never reaches the message."""
    message = _open_fails(f"postgresql://postgres:{SECRET}%zz@127.0.0.1:5432/test")
    assert "percent-encoded" in message


def test_redact_masks_passwords_in_userinfo_and_query() -> None:
    """redact() masks a password given before the host or as a query parameter."""
    assert redact(f"postgresql://u:{SECRET}@h/db") == "postgresql://u:***@h/db"
    assert redact(f"postgresql://u@h/db?sslmode=require&password={SECRET}") == \
        "postgresql://u@h/db?sslmode=require&password=***"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_url_spellings_and_options_become_libpq_parameters() -> None:
    """postgres://, postgresql+psycopg://, schema, pool_size and durability map onto libpq."""
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        target = parse_url(f"{scheme}://u:pw@h:5433/db?schema=app&pool_size=3&sslmode=disable",
                           durability="fast")
        params = conninfo_to_dict(target.conninfo)
        assert (params["host"], params["port"], params["dbname"], params["sslmode"]) == (
            "h", "5433", "db", "disable")
        assert params["options"] == "-c search_path=app -c synchronous_commit=off"
        assert (target.schema, target.pool_size) == ("app", 3)
    plain = conninfo_to_dict(parse_url("postgresql://h/db").conninfo)
    assert "options" not in plain
    assert plain["application_name"] == "chatledger"


def test_postgres_scheme_opens_the_same_store(tmp_path: Path) -> None:
    """postgres:// and postgresql:// URLs open the same log."""
    url = postgres_schema_url(postgres_test_schema(tmp_path))
    with open_store(url) as store:
        store.append("s", [MessageAppended(message=HumanMessage("hi"))])
    with open_store(url.replace("postgresql://", "postgres://", 1)) as same:
        assert same.version("s") == 1


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    """Every call on a closed store raises StoreError; closing twice is fine."""
    store = open_store(postgres_schema_url(postgres_test_schema(tmp_path)))
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append("s", [MessageAppended(message=HumanMessage("late"))])
    with pytest.raises(StoreError, match="closed"):
        store.read_all()
