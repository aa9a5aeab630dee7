"""The PostgreSQL store's append drivers: one call of the server-side append when it applies,
else the two-step plan, on the sync or the async pool; and what an append that failed at its
COMMIT returns or raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from chatledger.eventstore._append import prepare
from chatledger.eventstore._errors import OutcomeUnknownError, StoreError
from chatledger.eventstore._events import Event
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._store import AppendResult, check_version
from chatledger.eventstore.postgres import _sql as SQL
from chatledger.eventstore.postgres._connecting import Connections
from chatledger.eventstore.postgres._plans import (
    PendingAppend,
    Plan,
    Unconfirmed,
    Writer,
    append_plan,
    arun_call,
    confirmed,
    fast_append,
    fast_result,
    outcome_unknown,
    run_async,
    run_call,
)
from chatledger.eventstore.postgres._url import scrub

__all__ = ["Appending"]


class Appending(Connections):
    """The steps of ``append`` and ``aappend`` between checking the arguments and the result."""

    _projections: bool  # keep the projections up to date in each append's transaction
    # A tail listened to this schema at the last one-call append: the next one sends its
    # notification after the COMMIT (see SQL.LISTENERS_CLASS). Threads may race on it; either
    # value is safe, the function notifies itself when it finds a tail the client missed.
    _tails = False

    def _append_args(self, key: KeyLike, events: Sequence[Event], expected_version: int | None,
                     event_ids: Sequence[str] | None,
                     meta: dict[str, Any] | None) -> tuple[SessionKey, PendingAppend | None]:
        self._check_writable()
        key = SessionKey.coerce(key)
        check_version(expected_version, "expected_version")
        prepared, meta_text = prepare(events, event_ids, meta, limit=SQL.MAX_APPEND)
        if not prepared:
            return key, None
        # Given event ids may be retries: the general path checks them for duplicates.
        fast = None if event_ids is not None else fast_append(
            key, prepared, meta_text, expected_version, project=self._projections,
            schema=self.schema, tails=self._tails)
        plan = self._append_plan(key, prepared, meta_text, expected_version,
                                 event_ids is not None)
        return key, PendingAppend(len(prepared), fast, plan, [p.event_id for p in prepared])

    def _append_plan(self, key: SessionKey, prepared: Any, meta_text: str,
                     expected_version: int | None, check_ids: bool) -> Plan[AppendResult]:
        w = Writer()
        result = yield from append_plan(w, key, prepared, meta_text, expected_version, check_ids,
                                        project=self._projections, schema=self.schema)
        yield from w.flush()
        return result

    def _run_append(self, key: SessionKey, append: PendingAppend,
                    expected_version: int | None) -> AppendResult:
        """One call of the server-side append when it applies, else the two-step plan."""
        if append.fast is not None:
            try:
                with self._connection("append") as conn:
                    row = self._listened(run_call(conn, append.fast))
            except Unconfirmed as u:
                try:
                    rows = self._fetch("append", SQL.FIND_EVENT_IDS, (append.event_ids,))
                except StoreError as lookup:
                    raise outcome_unknown(u.error, lookup) from u.error
                return self._confirmed(key, append, rows, u)
            result = fast_result(key.stream_id, append.n, expected_version, row)
            if result is not None:
                return result
        done: AppendResult = self._run("append", append.plan)
        return done

    async def _arun_append(self, key: SessionKey, append: PendingAppend,
                           expected_version: int | None) -> AppendResult:
        if append.fast is not None:
            try:
                async with self._aconnection("append") as conn:
                    row = self._listened(await arun_call(conn, append.fast))
            except Unconfirmed as u:
                try:
                    rows = await self._afetch("append", SQL.FIND_EVENT_IDS, (append.event_ids,))
                except StoreError as lookup:
                    raise outcome_unknown(u.error, lookup) from u.error
                return self._confirmed(key, append, rows, u)
            result = fast_result(key.stream_id, append.n, expected_version, row)
            if result is not None:
                return result
        async with self._aconnection("append") as conn:
            done: AppendResult = await run_async(conn, append.plan, self.schema)
        return done

    def _listened(self, row: Any) -> Any:
        """The one call's row, after noting whether a tail listened (when it wrote)."""
        if row is not None and row[3] is not None:
            self._tails = bool(row[3])
        return row

    def _confirmed(self, key: SessionKey, append: PendingAppend,
                   rows: list[tuple[Any, ...]], failed: Unconfirmed) -> AppendResult:
        """The result of a one-call append that failed after its COMMIT may have applied,
        from its events looked up by id (``rows``)."""
        error = failed.error
        done = confirmed(key.stream_id, append.event_ids, rows, error)
        if done is not None:
            return done
        if failed.lost:
            raise outcome_unknown(error) from error
        raise self._error(error, "append") from error  # answered by the server: not stored

    def _restated(self, key: SessionKey, append: PendingAppend,
                  e: OutcomeUnknownError) -> OutcomeUnknownError:
        """``e`` naming the stream and the database, carrying the ids to retry with."""
        return OutcomeUnknownError(f"append to {key.stream_id!r} on {self._target.redacted}: "
                                   f"{scrub(self._target, e)}", append.event_ids)

    @staticmethod
    def _lost_race(e: StoreError) -> bool:
        """True when the database's unique (stream_id, version) stopped a concurrent append.

        The stream lock makes this unreachable for chatledger's own writers; it is the backstop
        should anything else write to the tables.
        """
        cause = e.__cause__
        return isinstance(cause, psycopg.errors.UniqueViolation) and \
            cause.diag.constraint_name in ("events_stream", "streams_pkey")
