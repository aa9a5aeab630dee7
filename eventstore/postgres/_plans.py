"""The PostgreSQL backend's transactions, written once for the sync and the async driver.

A plan is a generator that yields batches of statements and receives their results; it holds
the whole logic of a transaction (what to lock, what to check, what to write) and does no I/O.
``run_sync`` and ``run_async`` send each batch in one pipeline (one round trip) inside one
transaction, so ``append`` and ``aappend`` cannot drift apart; an append plan costs two round
trips, one to lock and read, one to write. The common turn (messages only, to a session that
exists or is new) skips plans: ``fast_append`` is one call of the server function
``chatledger_append_messages``, which falls back to the plan for a session whose projection
lags; clears, tags and erasures never take it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg import pq

from chatledger.eventstore import _codec
from chatledger.eventstore._append import (
    Prepared,
    duplicate_result,
    erase_targets,
    erased_events,
    prepare,
    stamp,
)
from chatledger.eventstore._errors import (
    ConcurrencyError,
    NotFoundError,
    OutcomeUnknownError,
    StoreError,
)
from chatledger.eventstore._events import AnyEvent, Event, MessageRedacted
from chatledger.eventstore._keys import SessionKey
from chatledger.eventstore._log import get_logger, logging_enabled
from chatledger.eventstore._projection import (
    InsertRows,
    ProjectionOp,
    ProjectionStep,
    appended_rows,
    prepared_steps,
    projection_ops,
    stored_step,
    table_writes,
)
from chatledger.eventstore._store import AppendResult, ErasedEvent, Progress
from chatledger.eventstore.postgres import _sql as SQL

__all__ = [
    "Duplicate",
    "PendingAppend",
    "Plan",
    "Query",
    "Unconfirmed",
    "Writer",
    "append_plan",
    "apply_ops",
    "arun_call",
    "catch_up_plan",
    "confirmed",
    "empty_append",
    "erase_plan",
    "expected_of",
    "fast_append",
    "fast_result",
    "lock_key",
    "lost_connection",
    "notice",
    "outcome_unknown",
    "project_plan",
    "rebuild_plan",
    "run_async",
    "run_call",
    "run_sync",
    "wrote",
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
def lock_key(schema: str, sid: str) -> str:
    """The text whose hash keys a stream's advisory lock."""
    return f"{schema}:{sid}"


def append_plan(
    w: Writer, key: SessionKey, prepared: list[Prepared], meta_text: str,
    expected_version: int | None, check_ids: bool, *, project: bool, schema: str,
) -> Plan[AppendResult]:
    """Append ``prepared`` to one stream; the caller flushes ``w`` before commit.

    The first batch locks the stream (an advisory lock, which assigns no transaction id),
    then reads its head together with this transaction's id, which is assigned only now: so
    a later append to the same stream always has a newer id, and larger positions. A stream
    the projection has fallen behind on (appends by a ``projections=False`` store) is caught
    up first, in this transaction.

    Raises:
        Duplicate: Every event id is stored already by an identical append.
        DuplicateEventError: An event id is stored already, but not by this same append.
        ConcurrencyError: The stream is not at ``expected_version``.
    """
    sid = key.stream_id
    queries = [Query(SQL.BEGIN_APPEND, (lock_key(schema, sid), sid), "one")]
    if check_ids:
        queries.append(Query(SQL.FIND_EVENT_IDS, ([p.event_id for p in prepared],), "all"))
    results = yield from w.read(*queries)
    xid, now, version, chain, updated_at, projected = results[0]
    if check_ids:
        found = duplicate_result(sid, prepared, results[1])
        if found is not None:
            raise Duplicate(found)
    exists = version is not None
    if not exists:
        version, chain, projected = 0, _codec.GENESIS, 0
    if expected_version is not None and expected_version != version:
        raise ConcurrencyError(sid, expected_version, version)
    if project and projected < version:
        (rows,) = yield from w.read(Query(SQL.CATCH_UP_EVENTS, ([sid],), "all"))
        behind = yield from project_plan(w, sid, [(r[1], stored_step(r[2], r[3]))
                                                  for r in rows])
        if behind:
            w.add(SQL.ADD_MESSAGE_COUNT, (behind, sid))
    stamped = stamp(sid, prepared, meta_text, version=version, chain=chain,
                    first_position=xid << SQL.POSITION_BITS, now=now, updated_at=updated_at)
    new_version, chain, now = stamped.version, stamped.chain, stamped.recorded_at
    ops, added = projection_ops(sid, prepared_steps(prepared, version + 1)) if project else ([], 0)
    projected_after = new_version if project else projected
    w.add(SQL.insert_events(len(prepared)), [c for row in stamped.rows for c in row])
    if not exists:
        # the catalog row must exist before a clear or tag in this append touches it
        w.add(SQL.INSERT_STREAM, (sid, _codec.encode(key.parts).decode(), new_version, chain,
                                  now, now, projected_after))
        w.many(SQL.INSERT_KEY_PART, [(name, value, sid) for name, value in key.parts.items()])
    yield from apply_ops(w, sid, ops)
    if exists:
        w.add(SQL.UPDATE_STREAM_HEAD, (new_version, chain, now, added, projected_after, sid))
    elif added:
        w.add(SQL.ADD_MESSAGE_COUNT, (added, sid))
    return AppendResult(sid, new_version, stamped.positions)


def fast_append(key: SessionKey, prepared: list[Prepared], meta_text: str,
                expected_version: int | None, *, project: bool, schema: str,
                tails: bool) -> Query | None:
    """The common append as one call of ``chatledger_append_messages``, or None when the
    events do more than add messages (clears, tags, redactions go through ``append_plan``).

    The call travels as one simple-protocol string with its own BEGIN and COMMIT: one round
    trip, one statement to bind on the client. ``tails`` (a tail listened at the last append
    seen): the string ends with the notification, sent after the COMMIT in a transaction of
    its own (see ``notice``). Otherwise the function notifies inside the transaction if it
    finds a tail listening, and the common case of no tail costs no notification at all.
    """
    sid = key.stream_id
    rows: list[dict[str, Any]] = []
    if project:
        history = appended_rows(sid, prepared, 1)  # versions relative to the head
        if history is None:
            ops, _ = projection_ops(sid, prepared_steps(prepared, 1))
            history = []
            for op in ops:
                if not isinstance(op, InsertRows):
                    return None
                history += op.rows
        rows = [{"v": r[1], "k": r[2], "m": r[3]} for r in history]
    events = [{"i": p.event_id, "t": p.type, "d": p.data, "p": p.payload_digest, "s": p.salt}
              for p in prepared]
    params = (lock_key(schema, sid), sid, -1 if expected_version is None else expected_version,
              project, meta_text, _codec.encode(events).decode(), _codec.encode(rows).decode(),
              _codec.encode(key.parts).decode(), SQL.schema_key(schema),
              None if tails else schema)
    if not tails:
        return Query(f"BEGIN; {SQL.APPEND_MESSAGES_CALL}; COMMIT", params, "one")
    note = notice(schema)
    return Query(f"BEGIN; {SQL.APPEND_MESSAGES_CALL}; COMMIT; {note.sql}",
                 (*params, *note.params), "one")


def fast_result(sid: str, n: int, expected_version: int | None,
                row: Sequence[Any] | None) -> AppendResult | None:
    """What ``fast_append`` did: the result, or None when the general path must run.

    Raises:
        ConcurrencyError: The stream is not at ``expected_version``.
        StoreError: The server function returned no row.
    """
    if row is None:
        raise StoreError(f"chatledger_append_messages returned nothing for {sid!r}")
    status, version, first, _ = row
    if status == "fallback":
        return None
    if status == "conflict":
        raise ConcurrencyError(sid, expected_version or 0, version)
    return AppendResult(sid, version, list(range(first, first + n)))


def project_plan(
    w: Writer, sid: str, items: Sequence[tuple[int, AnyEvent | Event | ProjectionStep]]
) -> Plan[int]:
    """Apply events of one stream to the projection tables; returns messages to count."""
    ops, added = projection_ops(sid, items)
    yield from apply_ops(w, sid, ops)
    return added


def apply_ops(w: Writer, sid: str, ops: Sequence[ProjectionOp]) -> Plan[None]:
    """Queue the statements that carry out ``projection_ops`` (``table_writes``)."""
    writes = table_writes(sid, ops)
    reply = None
    while True:
        try:
            statement = writes.send(reply)
        except StopIteration:
            return
        sql = getattr(SQL, statement.name)
        reply = None
        if statement.many:
            w.many(sql, statement.params)
        elif statement.read:
            (row,) = yield from w.read(Query(sql, statement.params, "one"))
            reply = row[0]
        else:
            w.add(sql, statement.params)

def catch_up_plan(schema: str, sids: Sequence[str]) -> Plan[int]:
    """Lock ``sids`` and apply their events that the projection has not seen yet."""
    w = Writer()
    yield from w.read(Query(SQL.LOCK_TABLES),
                      Query(SQL.LOCK_STREAMS, ([lock_key(schema, s) for s in sids],), "one"))
    n = yield from _catch_up(w, sids)
    yield from w.flush()
    return n


def _catch_up(w: Writer, sids: Sequence[str]) -> Plan[int]:
    """Project the unprojected events of ``sids`` (locked already); returns how many."""
    (rows,) = yield from w.read(Query(SQL.CATCH_UP_EVENTS, (list(sids),), "all"))
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][0] != rows[start][0]:
            sid = rows[start][0]
            added = yield from project_plan(w, sid, [
                (r[1], stored_step(r[2], r[3])) for r in rows[start:i]])
            w.add(SQL.SET_PROJECTED, (rows[i - 1][1], added, sid))
            start = i
    return len(rows)


def rebuild_plan(page: int = 1000, progress: Progress | None = None) -> Plan[int]:
    """Stop appends, empty the projection tables and replay the whole log."""
    w = Writer()
    yield from w.read(Query(SQL.LOCK_LOG))
    for statement in SQL.RESET_PROJECTION:
        w.add(statement)
    applied, after = 0, ""
    while True:
        (rows,) = yield from w.read(Query(SQL.UNPROJECTED, (after, page), "all"))
        if not rows:
            break
        sids = [r[0] for r in rows]
        n = yield from _catch_up(w, sids)
        applied += n
        after = sids[-1]
        if progress is not None:
            progress(n)
    yield from w.flush()
    return applied


def erase_plan(key: SessionKey, versions: Sequence[int] | None, reason: str, *,
               project: bool, schema: str) -> Plan[tuple[AppendResult, list[ErasedEvent]]]:
    """Record a ``MessageRedacted`` per erased event, then null those payloads.

    Raises:
        NotFoundError: The session or a version does not exist.
        InvalidInputError: A version whose event holds no content.
    """
    sid = key.stream_id
    w = Writer()
    _, _, head, stored = yield from w.read(Query(SQL.LOCK_TABLES),
                                           Query(SQL.LOCK_STREAM, (lock_key(schema, sid),)),
                                           Query(SQL.STREAM_VERSION, (sid,), "one"),
                                           Query(SQL.ERASE_CANDIDATES, (sid,), "all"))
    if head is None:
        raise NotFoundError(f"no session {sid!r}")
    targets = erase_targets(sid, head[0], stored, versions)
    if not targets:
        return AppendResult(sid, head[0], []), []
    events = [MessageRedacted(version=v, reason=reason) for v in targets]
    prepared, meta_text = prepare(events, None, {"actor": "erase"}, erasing=True,
                                 limit=SQL.MAX_APPEND)
    result = yield from append_plan(w, key, prepared, meta_text, None, False, project=project,
                                    schema=schema)
    w.many(SQL.ERASE_PAYLOAD, [(sid, v) for v in targets])
    yield from w.flush()
    return result, erased_events(sid, stored, targets)


# -- drivers -------------------------------------------------------------------------------
log = get_logger("chatledger.postgres")


def wrote(result: object) -> bool:
    """True when ``result`` (an append's, or an erasure's ``(result, erased)``) stored events."""
    if isinstance(result, tuple) and result and isinstance(result[0], AppendResult):
        result = result[0]
    return isinstance(result, AppendResult) and bool(result.positions) and not result.duplicate


def notice(schema: str) -> Query:
    """The NOTIFY that wakes tailing readers after an append; its payload is the schema.

    It travels in the append's round trip, after the COMMIT, as a transaction of its own: the
    server runs it once the COMMIT is flushed. PostgreSQL serialises the commits of
    transactions that notify, and this one writes nothing, so it never holds up the flush of
    an append; and a notification sent after the commit reaches every listener that could have
    missed the events. It is best effort: tailing readers also wake on their timeout, and an
    append that committed must never be reported as failed.
    """
    return Query(SQL.NOTIFY, (SQL.CHANNEL, schema))


def lost_connection(conn: Any, e: BaseException) -> bool:
    """True when ``e`` cut the connection (so a COMMIT sent may or may not have applied),
    False for an error the server answered (its transaction was rolled back)."""
    if not isinstance(e, psycopg.OperationalError):
        return False
    state = e.sqlstate
    return bool(conn.broken or conn.closed or state is None or state.startswith(("08", "57P")))


def outcome_unknown(e: BaseException, lookup: BaseException | None = None) -> OutcomeUnknownError:
    """The error for a connection lost once the append's COMMIT was on its way (``lookup``:
    why looking its events up afterwards failed too)."""
    also = "" if lookup is None else \
        f"; looking its events up failed too: {' '.join(str(lookup).split())}"
    return OutcomeUnknownError(
        "the connection was lost after the append's COMMIT was sent, so it may or may not "
        f"have been applied: retry with the same event_ids ({' '.join(str(e).split())}{also})"
    )


def committed(commit: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any] | None) -> bool:
    """True when the server confirmed the COMMIT executed on ``commit``."""
    if commit is None or commit.pgresult is None:
        return False
    return commit.pgresult.status == pq.ExecStatus.COMMAND_OK and \
        commit.statusmessage == "COMMIT"


def _notify_lost(e: BaseException) -> None:
    # The append committed; only its notification was lost (a cut connection, a full queue).
    if logging_enabled():
        log.warning("notify_failed", error=" ".join(str(e).split()))


def _rollback(conn: psycopg.Connection[Any]) -> None:
    # The first error is the one raised; a connection too broken to roll back is discarded by
    # the pool, which also rolls back what it is given back in a transaction.
    with contextlib.suppress(psycopg.Error):
        conn.rollback()


def run_sync(conn: psycopg.Connection[Any], plan: Plan[T], schema: str = "") -> T:
    """Run a plan in one transaction on ``conn`` (autocommit), one pipeline sync per batch.

    BEGIN travels with the first batch. A batch whose results the plan does not read costs
    no round trip of its own, so a plan's last writes, its COMMIT and (when it stored events)
    the notification reach the server together: a plain append is two round trips in all.
    Statements run on one cursor, except those whose rows the plan reads back, which get
    their own.

    Raises:
        OutcomeUnknownError: The connection was lost once COMMIT had been sent.
    """
    commit: psycopg.Cursor[Any] | None = None
    try:
        with conn.pipeline():
            cur = conn.cursor()
            cur.execute(SQL.BEGIN)
            batch = next(plan)
            while True:
                readers: list[psycopg.Cursor[Any] | None] = []
                for q in batch:
                    c = cur if q.fetch == "none" else conn.cursor()
                    if not q.many:
                        c.execute(q.sql, q.params)
                    elif len(q.params) == 1:
                        c.execute(q.sql, q.params[0])
                    else:
                        c.executemany(q.sql, q.params)
                    readers.append(None if c is cur else c)
                results = [None if c is None else c.fetchone() if q.fetch == "one"
                           else c.fetchall() for q, c in zip(batch, readers, strict=True)]
                try:
                    batch = plan.send(results)
                except StopIteration as stop:
                    value: T = stop.value
                    break
            commit = conn.cursor()
            commit.execute(SQL.COMMIT)
            if wrote(value):
                note = notice(schema)
                cur.execute(note.sql, note.params)
    except BaseException as e:
        if committed(commit):
            _notify_lost(e)
            return value
        _rollback(conn)
        if commit is not None and lost_connection(conn, e):
            raise outcome_unknown(e) from e
        raise
    return value


class Unconfirmed(Exception):  # a control-flow signal, never seen by callers
    """The one-call append failed with its COMMIT maybe applied: look its events up."""

    def __init__(self, error: psycopg.Error, lost: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.lost = lost  # the connection was cut, rather than the server answering


def run_call(conn: psycopg.Connection[Any], query: Query) -> Any:
    """Run ``fast_append``'s string (BEGIN, the call, COMMIT, maybe the notification) in one
    round trip; return the call's row.

    Raises:
        psycopg.Error: The server refused the call; its transaction was rolled back.
        Unconfirmed: Anything else (a lost connection, a failed notification): the COMMIT may
            have been applied.
    """
    cur = psycopg.ClientCursor(conn)
    try:
        cur.execute(query.sql, query.params, prepare=False)
    except psycopg.Error as e:
        if conn.info.transaction_status != pq.TransactionStatus.INERROR:
            raise Unconfirmed(e, lost_connection(conn, e)) from e
        _rollback(conn)
        raise
    cur.nextset()  # past BEGIN's result
    return cur.fetchone()


async def _arollback(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        await conn.rollback()


async def run_async(conn: psycopg.AsyncConnection[Any], plan: Plan[T], schema: str = "") -> T:
    """``run_sync`` for an async connection.

    Raises:
        OutcomeUnknownError: The connection was lost once COMMIT had been sent.
    """
    commit: psycopg.AsyncCursor[Any] | None = None
    try:
        async with conn.pipeline():
            cur = conn.cursor()
            await cur.execute(SQL.BEGIN)
            batch = next(plan)
            while True:
                readers: list[psycopg.AsyncCursor[Any] | None] = []
                for q in batch:
                    c = cur if q.fetch == "none" else conn.cursor()
                    if not q.many:
                        await c.execute(q.sql, q.params)
                    elif len(q.params) == 1:
                        await c.execute(q.sql, q.params[0])
                    else:
                        await c.executemany(q.sql, q.params)
                    readers.append(None if c is cur else c)
                results = [None if c is None else await c.fetchone() if q.fetch == "one"
                           else await c.fetchall() for q, c in zip(batch, readers, strict=True)]
                try:
                    batch = plan.send(results)
                except StopIteration as stop:
                    value: T = stop.value
                    break
            commit = conn.cursor()
            await commit.execute(SQL.COMMIT)
            if wrote(value):
                note = notice(schema)
                await cur.execute(note.sql, note.params)
    except BaseException as e:
        if committed(commit):
            _notify_lost(e)
            return value
        await _arollback(conn)
        if commit is not None and lost_connection(conn, e):
            raise outcome_unknown(e) from e
        raise
    return value


async def arun_call(conn: psycopg.AsyncConnection[Any], query: Query) -> Any:
    """``run_call`` for an async connection."""
    cur = psycopg.AsyncClientCursor(conn)
    try:
        await cur.execute(query.sql, query.params, prepare=False)
    except psycopg.Error as e:
        if conn.info.transaction_status != pq.TransactionStatus.INERROR:
            raise Unconfirmed(e, lost_connection(conn, e)) from e
        await _arollback(conn)
        raise
    cur.nextset()
    return await cur.fetchone()


def confirmed(sid: str, event_ids: Sequence[str], rows: Sequence[Sequence[Any]],
              error: psycopg.Error) -> AppendResult | None:
    """What an ``Unconfirmed`` append did, from its events looked up by id (``FIND_EVENT_IDS``
    rows): its result when they are stored (only what followed the COMMIT failed), None when
    they are not."""
    if not rows:
        return None
    stored = {r[0]: r for r in rows}
    if len(stored) != len(event_ids) or any(r[1] != sid for r in rows):
        raise StoreError(f"the append to {sid!r} is stored only in part or elsewhere; "
                         f"event ids {sorted(stored)}")
    _notify_lost(error)
    ordered = [stored[i] for i in event_ids]
    return AppendResult(sid, ordered[-1][2], [r[3] for r in ordered])


class PendingAppend(NamedTuple):
    """An append ready to run: the one-call form when it applies, and the general plan."""

    n: int
    fast: Query | None
    plan: Plan[AppendResult]
    event_ids: list[str]


def expected_of(expected_version: int | None, actual: int) -> int:
    # An unconditional append that lost a race expected the version it had read: one less.
    return max(actual - 1, 0) if expected_version is None else expected_version


def empty_append(key: SessionKey, expected_version: int | None, current: int) -> AppendResult:
    """An append of no events: writes nothing, but still checks ``expected_version``."""
    if expected_version is not None and expected_version != current:
        raise ConcurrencyError(key.stream_id, expected_version, current)
    return AppendResult(key.stream_id, current, [])
