"""The SQLite backend's ``verify``: the shared checks of ``_verify`` fed from this backend's
tables, read through each row's own columns, plus SQLite's ``quick_check``."""

from __future__ import annotations

import sqlite3

from chatledger.eventstore._heads import LogHead
from chatledger.eventstore._merkle import MerkleTree
from chatledger.eventstore._store import Problem, Progress, VerifyReport
from chatledger.eventstore._verify import CatalogRow, LogTables, check_against, verify_log
from chatledger.eventstore.sqlite import _sql as SQL
from chatledger.eventstore.sqlite._projecting import counter_problems

__all__ = ["verify_connection"]


def verify_connection(conn: sqlite3.Connection, sid: str | None, tree: MerkleTree | None,
                      against: LogHead | None, progress: Progress | None) -> VerifyReport:
    """``verify`` inside one read transaction on ``conn``: every row of the log (or of one
    stream), the catalog and projection tables against the fold, the counters, the
    database's own ``quick_check``, and the log head ``against``, if given."""
    where, params = ("", ()) if sid is None else (SQL.VERIFY_ONE, (sid,))
    last, checkpoint = conn.execute(SQL.BOTH_POSITIONS).fetchone()
    counters = counter_problems(last, checkpoint)
    if checkpoint == SQL.CAUGHT_UP:  # every event is applied
        checkpoint = last
    rows = conn.execute(SQL.VERIFY_ROWS) if sid is None else \
        conn.execute(SQL.VERIFY_ROWS_ONE, (sid,))

    def tables() -> LogTables:
        return LogTables(
            (CatalogRow(*r) for r in conn.execute(SQL.VERIFY_CATALOG.format(where=where),
                                                  params)),
            conn.execute(SQL.VERIFY_KEYS.format(where=where), params),
            conn.execute(SQL.VERIFY_HISTORY.format(where=where), params),
            conn.execute(SQL.VERIFY_CLEARS.format(where=where), params),
            lambda one: (conn.execute(SQL.LOCATE_EVENTS, (one,)),
                         conn.execute(SQL.LOCATE_HISTORY, (one,)),
                         conn.execute(SQL.LOCATE_CLEARS, (one,))))
    problems, streams, events = verify_log(
        rows, tables, stream_id=sid,
        checkpoint=checkpoint,
        last_position=last if sid is None else None, tree=tree, progress=progress)
    if sid is None:
        problems += counters
        problems += [Problem("", 0, None, "integrity", f"quick_check: {message}")
                     for (message,) in conn.execute(SQL.QUICK_CHECK) if message != "ok"]
    if against is not None and tree is not None:
        check_against(problems, tree, against,
                      lambda i: conn.execute(SQL.EVENT_AT_INDEX, (i,)).fetchone())
    return VerifyReport(streams=streams, events=events, problems=problems)
