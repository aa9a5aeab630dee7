"""The SQLite backend's projection maintenance: the shared table operations executed with
this backend's SQL, catch-up from the projection's checkpoint, and the counter check."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chatledger.eventstore._events import AnyEvent, Event
from chatledger.eventstore._projection import (
    ProjectionStep,
    projection_ops,
    stored_step,
    table_writes,
)
from chatledger.eventstore._store import Problem, Progress
from chatledger.eventstore.sqlite import _sql as SQL

__all__ = ["catch_up_locked", "counter_problems", "project"]


def counter_problems(last: int | None, checkpoint: int | None) -> list[Problem]:
    """What is wrong with the position counter and the projection's checkpoint, if anything."""
    if last is None or checkpoint is None:
        return [Problem("", 0, None, "catalog", "the position counter or the projection's "
                        "checkpoint row is missing")]
    if checkpoint > last:
        return [Problem("", 0, checkpoint, "projection", f"the projection's checkpoint "
                        f"({checkpoint}) is beyond the log's last position ({last})")]
    return []


def project(conn: sqlite3.Connection, sid: str,
            items: Sequence[tuple[int, AnyEvent | Event | ProjectionStep]]) -> int:
    """Apply events of one stream to the projection tables; returns messages to count."""
    ops, added = projection_ops(sid, items)
    writes = table_writes(sid, ops)
    reply = None
    while True:
        try:
            statement = writes.send(reply)
        except StopIteration:
            return added
        sql = getattr(SQL, statement.name)
        if statement.many:
            conn.executemany(sql, statement.params)
            reply = None
        else:
            row = conn.execute(sql, statement.params).fetchone()
            reply = row[0] if statement.read else None


def catch_up_locked(conn: sqlite3.Connection, page: int = 5000,
                    progress: Progress | None = None) -> int:
    """Apply the events after the projection's checkpoint, page by page (in the caller's
    write transaction); returns how many."""
    checkpoint = conn.execute(SQL.GET_CHECKPOINT, ("history",)).fetchone()[0]
    if checkpoint == SQL.CAUGHT_UP:
        return 0
    applied = 0
    while True:
        rows = conn.execute(SQL.CATCH_UP_PAGE, (checkpoint, page)).fetchall()
        if not rows:
            break
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][0] != rows[start][0]:
                sid = rows[start][0]
                added = project(conn, sid, [(r[1], stored_step(r[3], r[4]))
                                                  for r in rows[start:i]])
                if added:
                    conn.execute(SQL.ADD_MESSAGE_COUNT, (added, sid))
                start = i
        checkpoint = rows[-1][2]
        applied += len(rows)
        conn.execute(SQL.SET_CHECKPOINT, (checkpoint, "history"))
        if progress is not None:
            progress(len(rows))
    conn.execute(SQL.SET_CHECKPOINT, (SQL.CAUGHT_UP, "history"))
    return applied
