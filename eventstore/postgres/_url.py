"""PostgreSQL URLs: what ``open_store`` accepts, and the libpq connection string it becomes.

Accepted: ``postgresql://user:password@host:port/dbname?param=value`` (also ``postgres://`` and
``postgresql+psycopg://``), with every libpq parameter passed through, plus two of chatledger's
own that libpq never sees:

- ``schema=name``: keep the tables in that schema (made by the first write if missing), by
  setting the connection's ``search_path``. Use one schema per application, or one per test.
- ``pool_size=N``: at most N connections per process (default 10) for the synchronous pool,
  and as many for each event loop that uses the async methods.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import msgspec
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chatledger.eventstore._errors import StoreError
from chatledger.eventstore._redact import SECRET_NAME, redact_url

__all__ = ["PostgresTarget", "parse_url", "redact", "scrub"]

DEFAULT_POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_QUERY_PASSWORD = re.compile(r"(?i)((?:^|[?&])password=)[^&#]*")
_SCHEMES = ("postgresql", "postgres")


class PostgresTarget(msgspec.Struct, frozen=True):
    """A parsed PostgreSQL URL.

    Attributes:
        url: The URL as given.
        redacted: The URL with its password replaced by ``***``, safe for messages and logs.
        conninfo: The libpq connection string, chatledger's own parameters removed.
        schema: The schema named by ``?schema=``, or None for the server's default path.
        pool_size: The most connections one pool may open.
        password: The password, only so that it can be scrubbed from error messages.
        secrets: Every secret value of the URL (password, sslpassword, ...), likewise.
    """

    url: str
    redacted: str
    conninfo: str
    schema: str | None
    pool_size: int
    password: str | None
    secrets: tuple[str, ...] = ()


def redact(url: str) -> str:
    """The URL without its secrets, wherever they were given."""
    return _QUERY_PASSWORD.sub(r"\1***", redact_url(url))


def parse_url(url: str, *, durability: str = "full", readonly: bool = False) -> PostgresTarget:
    """Parse a PostgreSQL URL and build the connection string the store uses.

    Args:
        url: ``postgresql://...`` or ``postgres://...``.
        durability: ``"fast"`` adds ``synchronous_commit=off`` to every connection.
        readonly: Add ``default_transaction_read_only=on`` to every connection.

    Raises:
        StoreError: The URL is malformed, or ``schema``/``pool_size`` is invalid.
    """
    redacted = redact(url)
    scheme, sep, rest = url.partition("://")
    base = scheme.split("+", 1)[0]
    if not sep or base not in _SCHEMES:
        raise StoreError(f"{redacted!r} is not a PostgreSQL URL: use postgresql://user@host/dbname")
    head, _, query = rest.partition("?")
    kept: list[str] = []
    schema: str | None = None
    pool_size = DEFAULT_POOL_SIZE
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name == "schema":
            schema = unquote(value)
            if not _SCHEMA.match(schema) or schema.startswith("pg_"):
                raise StoreError(
                    f"schema {schema!r} in {redacted!r} must be a lowercase identifier "
                    "(letters, digits, underscores; at most 63; not starting with pg_)"
                )
        elif name == "pool_size":
            try:
                pool_size = int(unquote(value))
            except ValueError:
                pool_size = 0
            if not 1 <= pool_size <= 1000:
                raise StoreError(f"pool_size in {redacted!r} must be an int from 1 to 1000")
        else:
            kept.append(pair)
    libpq_url = f"postgresql://{head}" + (f"?{'&'.join(kept)}" if kept else "")
    try:
        params = conninfo_to_dict(libpq_url)
    except ProgrammingError as e:
        # libpq quotes the token it could not parse, which may be the password: the message
        # is scrubbed and the original exception (with the raw text) is not chained.
        creds = head.partition("/")[0].rpartition("@")[0]
        secret = creds.partition(":")[2]
        message = str(e).strip()
        for text in {secret, unquote(secret)} - {""}:
            message = message.replace(text, "***")
        raise StoreError(f"bad PostgreSQL URL {redacted!r}: {message}") from None
    password = params.get("password")
    options = [str(params.get("options") or "").strip()]
    if schema is not None:
        options.append(f"-c search_path={schema}")
    if durability == "fast":
        options.append("-c synchronous_commit=off")
    if readonly:
        options.append("-c default_transaction_read_only=on")
    if any(options):
        params["options"] = " ".join(o for o in options if o)
    params.setdefault("application_name", "chatledger")
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    return PostgresTarget(
        url=url, redacted=redacted, conninfo=make_conninfo("", **params), schema=schema,
        pool_size=pool_size, password=str(password) if password else None,
        secrets=tuple(sorted({str(v) for k, v in params.items()
                              if SECRET_NAME.search(k) and v and len(str(v)) >= 3},
                             key=len, reverse=True)),
    )


def scrub(target: PostgresTarget, text: object) -> str:
    """A driver's error message on one line, its password taken out should it ever be echoed."""
    out = " ".join(str(text).split())  # libpq's multi-line messages become one line
    if target.password and len(target.password) >= 3:
        out = out.replace(target.password, "***")
    for secret in target.secrets:
        out = out.replace(secret, "***")
    return out
