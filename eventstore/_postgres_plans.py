"""The PostgreSQL backend's transactions, written once for the sync and the async driver.

A plan is a generator that yields batches of statements and receives their results; it holds
the whole logic of a transaction (what to lock, what to check, what to write) and does no I/O.
``run_sync`` and ``run_async`` send each batch in one pipeline (one round trip) inside one
transaction, so ``append`` and ``aappend`` cannot drift apart, and a typical append costs two
round trips: one to lock and read, one to write.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, TypeVar

import psycopg

from eventstore import _codec
from eventstore import _postgres_sql as SQL
from eventstore._errors import ConcurrencyError, DuplicateEventError, NotFoundError
from eventstore._events import AnyEvent, Event, MessageRedacted, PayloadErased, Record
from eventstore._keys import SessionKey
from eventstore._store import (
    AppendResult,
    ChangeTags,
    DropVersion,
    InsertRows,
    MarkClear,
    Prepared,
    Progress,
    ProjectionStep,
    SessionInfo,
    erase_targets,
    merge_tags,
    prepare,
    projection_ops,
    stored_step,
)

__all__ = [
    "Duplicate",
    "Plan",
    "Query",
    "Writer",
    "append_plan",
    "catch_up_plan",
    "caught_up_plan",
    "erase_plan",
    "project_plan",
    "rebuild_plan",
    "record_of",
    "run_async",
    "run_sync",
    "session_of",
]

T = TypeVar("T")


class Query(NamedTuple):
    """One statement of a batch: ``fetch`` is "one", "all" or "none"; ``many`` runs it per row."""

    sql: str
    params: Any = None
    fetch: str = "none"
    many: bool = False


Plan = Generator[list[Query], list[Any], T]


class Duplicate(Exception):  # a control-flow signal, never seen by callers
    """Every event id is stored already by an identical append: roll back, return ``result``."""

    def __init__(self, result: AppendResult) -> None:
        super().__init__(result.stream_id)
        self.result = result


class Writer:
    """Buffers writes so they travel with the next read (or the final flush) in one batch."""

    def __init__(self) -> None:
        self.pending: list[Query] = []

    def add(self, sql: str, params: Any = None) -> None:
        """Queue one statement whose result is not needed."""
        self.pending.append(Query(sql, params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Queue one statement per row."""
        if rows:
            self.pending.append(Query(sql, list(rows), many=True))

    def read(self, *queries: Query) -> Plan[list[Any]]:
        """Send the queued writes and ``queries``; return the results of ``queries``."""
        batch = [*self.pending, *queries]
        self.pending = []
        results = yield batch
        return results[len(results) - len(queries):]

    def flush(self) -> Plan[None]:
        """Send whatever is still queued."""
        if self.pending:
            yield from self.read()


# -- plans ---------------------------------------------------------------------------------
def append_plan(
    w: Writer, key: SessionKey, prepared: list[Prepared], meta_text: str,
    expected_version: int | None, check_ids: bool, *, project: bool, schema: str,
) -> Plan[AppendResult]:
    """Append ``prepared`` to one stream; the caller flushes ``w`` before commit.

    The first batch takes the store-wide write lock by handing out positions (the
    ``checkpoints`` row 'log' stays locked until commit), then locks the stream's head and
    reads the projection's checkpoint; both reads run after the lock is granted, so they see
    every earlier append.

    Raises:
        Duplicate: Every event id is stored already by an identical append.
        DuplicateEventError: An event id is stored already, but not by this same append.
        ConcurrencyError: The stream is not at ``expected_version``.
    """
    sid = key.stream_id
    n = len(prepared)
    queries = [Query(SQL.TAKE_POSITIONS, (n,), "one"), Query(SQL.LOCK_STREAM, (sid,), "one"),
               Query(SQL.GET_CHECKPOINT, ("history",), "one")]
    if check_ids:
        queries.append(Query(SQL.FIND_EVENT_IDS, ([p.event_id for p in prepared],), "all"))
    results = yield from w.read(*queries)
    (last, now), head, (checkpoint,) = results[:3]
    if check_ids:
        found = _find_duplicate(sid, prepared, results[3])
        if found is not None:
            raise Duplicate(found)
    version, chain, updated_at = head if head is not None else (0, _codec.GENESIS, None)
    if expected_version is not None and expected_version != version:
        raise ConcurrencyError(sid, expected_version, version)
    before = last - n
    if project and checkpoint != before:
        yield from catch_up_plan(w, checkpoint)
    if updated_at is not None and now < updated_at:
        now = updated_at  # recorded_at never decreases within a stream, whatever the clock does
    rows = []
    positions = []
    for i, p in enumerate(prepared):
        v = version + 1 + i
        pos = before + 1 + i
        digest = _codec.digest_of(pos, sid, v, p.event_id, p.type, now, p.payload_digest,
                                  meta_text)
        chain = _codec.chain_of(chain, digest)
        rows.append((sid, v, pos, p.event_id, p.type, now, p.data, meta_text,
                     p.payload_digest, digest, chain))
        positions.append(pos)
    w.many(SQL.INSERT_EVENT, rows)
    new_version = version + n
    if head is None:
        # the catalog row must exist before a clear or tag in this append touches it
        w.add(SQL.INSERT_STREAM, (sid, _codec.encode(key.parts).decode(), new_version, chain,
                                  now, now))
        w.many(SQL.INSERT_KEY_PART, [(name, value, sid) for name, value in key.parts.items()])
    added = 0
    if project:
        added = yield from project_plan(w, sid, [(version + 1 + i, p.event)
                                                 for i, p in enumerate(prepared)])
        w.add(SQL.SET_CHECKPOINT, (positions[-1], "history"))
    if head is not None:
        w.add(SQL.UPDATE_STREAM_HEAD, (new_version, chain, now, added, sid))
    elif added:
        w.add(SQL.ADD_MESSAGE_COUNT, (added, sid))
    w.add(SQL.NOTIFY, (SQL.CHANNEL, f"{schema}:{positions[-1]}"))
    return AppendResult(sid, new_version, positions)


def _find_duplicate(
    sid: str, prepared: list[Prepared], rows: list[tuple[Any, ...]]
) -> AppendResult | None:
    if not rows:
        return None
    stored = {r[0]: r for r in rows}
    same = (
        len(rows) == len(prepared)
        and all(stored[p.event_id][1] == sid for p in prepared)
        and all(stored[p.event_id][4] == p.payload_digest for p in prepared)
    )
    if not same:
        clash = ", ".join(sorted(stored))
        raise DuplicateEventError(
            f"event ids {clash} are already stored, but not as this same append to {sid!r}"
        )
    ordered = [stored[p.event_id] for p in prepared]
    return AppendResult(sid, ordered[-1][2], [r[3] for r in ordered], duplicate=True)


def project_plan(
    w: Writer, sid: str, items: Sequence[tuple[int, AnyEvent | Event | ProjectionStep]]
) -> Plan[int]:
    """Apply events of one stream to the projection tables; returns messages to count."""
    ops, added = projection_ops(sid, items)
    for op in ops:
        match op:
            case InsertRows(rows=rows):
                w.many(SQL.INSERT_HISTORY, rows)
            case MarkClear(version=version):
                w.add(SQL.INSERT_CLEAR, (sid, version))
                w.add(SQL.CLEAR_CATALOG, (version, sid))
            case DropVersion(version=version):
                w.add(SQL.DELETE_HISTORY_VERSION, (sid, version))
                w.add(SQL.RECOUNT_CURRENT, (sid,))
            case ChangeTags():
                (row,) = yield from w.read(Query(SQL.GET_TAGS, (sid,), "one"))
                w.add(SQL.SET_TAGS, (merge_tags(row[0], op), sid))
    return added


def catch_up_plan(w: Writer, checkpoint: int, page: int = 5000,
                  progress: Progress | None = None) -> Plan[int]:
    """Project every event after ``checkpoint``; the write lock must be held already."""
    applied = 0
    while True:
        (rows,) = yield from w.read(Query(SQL.CATCH_UP_PAGE, (checkpoint, page), "all"))
        if not rows:
            break
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][0] != rows[start][0]:
                sid = rows[start][0]
                added = yield from project_plan(w, sid, [
                    (r[1], stored_step(r[3], r[4])) for r in rows[start:i]])
                if added:
                    w.add(SQL.ADD_MESSAGE_COUNT, (added, sid))
                start = i
        checkpoint = rows[-1][2]
        applied += len(rows)
        w.add(SQL.SET_CHECKPOINT, (checkpoint, "history"))
        if progress is not None:
            progress(len(rows))
    return applied


def caught_up_plan() -> Plan[int]:
    """Take the write lock and apply what the projections have not seen yet."""
    w = Writer()
    (_, (last, checkpoint)) = yield from w.read(Query(SQL.LOCK_WRITE, None, "one"),
                                                Query(SQL.POSITIONS, None, "one"))
    if last == checkpoint:
        return 0
    n = yield from catch_up_plan(w, checkpoint)
    yield from w.flush()
    return n


def rebuild_plan(progress: Progress | None = None) -> Plan[int]:
    """Take the write lock, empty the projection tables and replay the whole log."""
    w = Writer()
    yield from w.read(Query(SQL.LOCK_WRITE, None, "one"))
    for statement in SQL.RESET_PROJECTION:
        w.add(statement)
    n = yield from catch_up_plan(w, 0, page=20000, progress=progress)
    yield from w.flush()
    return n


def erase_plan(key: SessionKey, versions: Sequence[int] | None, reason: str, *,
               project: bool, schema: str) -> Plan[AppendResult]:
    """Record a ``MessageRedacted`` per erased event, then null those payloads.

    Raises:
        NotFoundError: The session or a version does not exist.
        InvalidInputError: A version whose event holds no content.
    """
    sid = key.stream_id
    w = Writer()
    _, head, stored = yield from w.read(Query(SQL.LOCK_WRITE, None, "one"),
                                        Query(SQL.STREAM_VERSION, (sid,), "one"),
                                        Query(SQL.ERASE_CANDIDATES, (sid,), "all"))
    if head is None:
        raise NotFoundError(f"no session {sid!r}")
    targets = erase_targets(sid, head[0], stored, versions)
    if not targets:
        return AppendResult(sid, head[0], [])
    events = [MessageRedacted(version=v, reason=reason) for v in targets]
    prepared, meta_text = prepare(events, None, {"actor": "erase"}, erasing=True)
    result = yield from append_plan(w, key, prepared, meta_text, None, False, project=project,
                                    schema=schema)
    w.many(SQL.ERASE_PAYLOAD, [(sid, v) for v in targets])
    yield from w.flush()
    return result


# -- drivers -------------------------------------------------------------------------------
def run_sync(conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
    """Run a plan in one transaction on ``conn``, one pipeline per batch."""
    with conn.pipeline(), conn.transaction():
        batch = next(plan)
        while True:
            cursors = []
            for q in batch:
                cur = conn.cursor()
                if not q.many:
                    cur.execute(q.sql, q.params)
                elif len(q.params) == 1:
                    cur.execute(q.sql, q.params[0])
                else:
                    cur.executemany(q.sql, q.params)
                cursors.append(cur)
            results = [c.fetchone() if q.fetch == "one" else c.fetchall() if q.fetch == "all"
                       else None for q, c in zip(batch, cursors, strict=True)]
            try:
                batch = plan.send(results)
            except StopIteration as stop:
                value: T = stop.value
                return value


async def run_async(conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
    """``run_sync`` for an async connection."""
    async with conn.pipeline(), conn.transaction():
        batch = next(plan)
        while True:
            cursors = []
            for q in batch:
                cur = conn.cursor()
                if not q.many:
                    await cur.execute(q.sql, q.params)
                elif len(q.params) == 1:
                    await cur.execute(q.sql, q.params[0])
                else:
                    await cur.executemany(q.sql, q.params)
                cursors.append(cur)
            results = [await c.fetchone() if q.fetch == "one"
                       else await c.fetchall() if q.fetch == "all"
                       else None for q, c in zip(batch, cursors, strict=True)]
            try:
                batch = plan.send(results)
            except StopIteration as stop:
                value: T = stop.value
                return value


# -- rows ----------------------------------------------------------------------------------
def record_of(row: Sequence[Any]) -> Record:
    """A stored event row (``_EVENT_COLUMNS`` order) as a ``Record``."""
    position, stream_id, version, event_id, type_, recorded_at, data, meta, digest, chain = row
    event: AnyEvent | PayloadErased = _codec.decode_event(type_, data)
    return Record(position, stream_id, version, event_id, type_, _codec.parse_time(recorded_at),
                  event, _codec.decode_json(meta), digest, chain)


def session_of(row: Sequence[Any]) -> SessionInfo:
    """A ``streams`` row as a catalog entry."""
    stream_id, key_json, version, count, created, updated, tags = row
    return SessionInfo(
        key=SessionKey(**_codec.decode_json(key_json)), stream_id=stream_id, version=version,
        message_count=count, created_at=_codec.parse_time(created),
        last_active=_codec.parse_time(updated), tags=_codec.decode_json(tags),
    )
