"""What every command shares: the database URL, the open store, the output mode."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from chatledger.eventstore import EventStore, NotFoundError, SessionKey, default_url, open_store

__all__ = [
    "CHECK_FAILED",
    "Ledger",
    "json_flag",
    "pass_ledger",
    "require_session",
    "table_flags",
]

F = TypeVar("F", bound=Callable[..., Any])

CHECK_FAILED = 1
"""Exit status of a check that ran and found something (like ``diff``: 0 same, 1 differ, 2 trouble)."""


class Ledger:
    """The command line's state: which database, opened at most once, closed at exit.

    Args:
        url: The ``--db`` value; None means ``$CHATLEDGER_URL``, else ``./chatledger.db``.
        as_json: ``--json`` was given before the command.
        debug: ``--debug``: show tracebacks of unexpected errors.
    """

    def __init__(self, url: str | None, *, as_json: bool = False, debug: bool = False,
                 fmt: str | None = None) -> None:
        self.url = url or default_url()
        self.as_json = as_json
        self.debug = debug
        self.fmt = fmt
        self._store: EventStore | None = None

    def store(self, *, write: bool = False, create: bool = False) -> EventStore:
        """The store, opened on first use: read-only unless the command writes.

        Args:
            write: The command appends (``fork``, ``erase``, ``rebuild``); without it the
                store is opened read-only, so a read never writes nor takes the write lock.
            create: The command may make the ledger (``demo``, ``chat``, ``import``,
                ``init``); without it a missing file is an error, so a mistyped ``--db``
                never leaves an empty database behind.

        Raises:
            NotFoundError: The SQLite file does not exist and ``create`` is false.
            StoreError: The database cannot be opened, or is not a chatledger ledger.
        """
        if self._store is None:
            path = sqlite_file(self.url)
            if path is not None and not create and not os.path.exists(path):
                raise NotFoundError(
                    f"no chatledger database at {path!r}: give --db URL or set CHATLEDGER_URL "
                    "(`chatledger demo` creates ./chatledger.db, `chatledger init` an empty one)"
                )
            self._store = open_store(self.url, readonly=not (write or create), create=create)
        return self._store

    def wants_json(self, flag: bool) -> bool:
        """JSON output if ``--json`` was given before or after the command name."""
        return flag or self.as_json

    def output(self, as_json: bool) -> str:
        """The output form asked for: ``json``, ``nl`` (JSON lines), ``csv`` or ``table``."""
        return "json" if self.wants_json(as_json) else self.fmt or "table"

    def close(self) -> None:
        """Close the store if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names (None for other backends and for ``:memory:``)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme != "sqlite":
        return None
    path = (rest[1:] if rest.startswith("/") else rest) if sep else url
    return None if path in ("", ":memory:") else path


def require_session(store: EventStore, key: SessionKey) -> None:
    """Fail clearly on a key with no events, rather than print an empty history.

    Raises:
        NotFoundError: The session has no events.
    """
    if store.session(key) is None:
        raise NotFoundError(f"no session {key.stream_id!r} (`chatledger sessions` lists them)")


pass_ledger = click.make_pass_decorator(Ledger)


def json_flag(fn: F) -> F:
    """Add ``--json`` to a command."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of a table.")(fn)


def _set_format(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ledger = ctx.find_object(Ledger)
        if ledger is not None:
            ledger.fmt = str(param.name)


def table_flags(fn: F) -> F:
    """Add ``--json``, ``--nl`` (JSON lines) and ``--csv`` to a command that prints a table."""
    fn = click.option("--csv", "csv", is_flag=True, expose_value=False, callback=_set_format,
                      help="Print the rows as CSV with a header.")(fn)
    fn = click.option("--nl", "nl", is_flag=True, expose_value=False, callback=_set_format,
                      help="Print one JSON object per line (newline-delimited JSON).")(fn)
    return json_flag(fn)
