"""The PostgreSQL backend's ``verify``: the shared checks of ``_verify`` fed from this
backend's tables in one snapshot, the log read through a server-side cursor."""

from __future__ import annotations

from typing import Any

import psycopg

from chatledger.eventstore._heads import LogHead
from chatledger.eventstore._merkle import MerkleTree
from chatledger.eventstore._store import Progress, VerifyReport
from chatledger.eventstore._verify import CatalogRow, LogTables, check_against, verify_log
from chatledger.eventstore.postgres import _sql as SQL

__all__ = ["verify_connection", "verify_nothing"]


def verify_connection(conn: psycopg.Connection[Any], sid: str | None, tree: MerkleTree | None,
                      against: LogHead | None, progress: Progress | None) -> VerifyReport:
    """``verify`` in one repeatable-read snapshot on ``conn``: every row of the log (or of
    one stream), the catalog and projection tables against the fold, and the log head
    ``against``, if given."""
    where, params = ("", ()) if sid is None else (SQL.VERIFY_ONE, (sid,))
    with conn.transaction():
        conn.execute(SQL.SNAPSHOT)

        def tables() -> LogTables:
            return LogTables(
                [CatalogRow(*r) for r in conn.execute(SQL.VERIFY_CATALOG.format(where=where),
                                                      params)],
                conn.execute(SQL.VERIFY_KEYS.format(where=where), params).fetchall(),
                conn.execute(SQL.VERIFY_HISTORY.format(where=where), params),
                conn.execute(SQL.VERIFY_CLEARS.format(where=where), params).fetchall(),
                lambda one: (conn.execute(SQL.LOCATE_EVENTS, (one,)).fetchall(),
                             conn.execute(SQL.LOCATE_HISTORY, (one,)).fetchall(),
                             conn.execute(SQL.LOCATE_CLEARS, (one,)).fetchall()))
        with conn.cursor(name="chatledger_verify") as cur:
            cur.itersize = 5000
            cur.execute(SQL.VERIFY_ROWS.format(where=where), params)
            problems, streams, events = verify_log(
                cur, tables, stream_id=sid, tree=tree,
                progress=progress)
        if against is not None and tree is not None:
            check_against(problems, tree, against,
                          lambda i: conn.execute(SQL.EVENT_AT_INDEX, (i,)).fetchone())
    return VerifyReport(streams=streams, events=events, problems=problems)


def verify_nothing(sid: str | None, tree: MerkleTree | None, against: LogHead | None,
                   progress: Progress | None) -> VerifyReport:
    """``verify`` of a ledger not created yet: the same checks over no rows and empty tables,
    so the answer is an empty ledger's (and a log head ``against`` of a non-empty log is a
    problem)."""
    problems, streams, events = verify_log([], lambda: LogTables([], [], [], []), stream_id=sid,
                                           tree=tree, progress=progress)
    if against is not None and tree is not None:
        check_against(problems, tree, against, lambda i: None)
    return VerifyReport(streams=streams, events=events, problems=problems)
