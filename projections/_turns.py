"""Chain turns in the log: what one turn writes, and turns read back with their messages.

A saved turn is one append: its input and output messages as ``MessageAppended`` events, then
a ``RunRecorded`` that refers to them by version, then one ``ModelCalled`` per model call made
during the run. A turn that failed or was cancelled appends only its ``RunRecorded`` (which
then holds the input and any partial output itself) and its model calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Union

import msgspec

from chatledger.eventstore import (
    AnyMessage,
    ConcurrencyError,
    Event,
    Message,
    MessageAppended,
    MessageRef,
    ModelCalled,
    Record,
    RunRecorded,
)

__all__ = [
    "OnConflict",
    "RecordedTurn",
    "Turn",
    "TurnAppends",
    "recorded_turns",
    "resolve_call",
    "turn_appends",
    "turn_events",
    "turn_meta",
]

OnConflict = Literal["merge", "raise"]

# A merging turn retries for as long as the session keeps moving: each lost race means another
# append landed, so the session makes progress and the turn's chance comes. It backs off by a
# random wait (full jitter, doubling up to the cap) so that turns piled on one session spread
# out instead of colliding in lockstep. It gives up only when the store reports conflicts
# without moving on for MERGE_STALL_SECONDS: a store that is stuck, not a busy session.
MERGE_BACKOFF_SECONDS = 0.002
MERGE_BACKOFF_CAP_SECONDS = 0.1
MERGE_STALL_SECONDS = 30.0

TurnAppends = Generator[tuple[float, list[Event], Union[int, None]], ConcurrencyError, None]
"""Yields the appends that record a turn: (wait, events, expected_version), where ``wait`` is
how many seconds to sleep before trying. After one of them fails with ``ConcurrencyError``,
send the error in: the plan yields the next try or raises."""


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One chain run, as ``ChatHistory.record_turn`` writes it.

    Attributes:
        run_id: The run's id (also in the append's meta).
        input: The turn's new input messages.
        output: The messages to save from the output (for a failed or cancelled run, whatever
            partial output there was).
        status: "ok" saves the messages; "error" or "cancelled" records the run only.
        history_version: The history version the turn read; None when unknown.
        model: The name of the chat model the chain ran.
        latency_ms: How long the run took.
        error: What went wrong, for a failed run.
        chain_input: The chain's whole input as JSON, its new messages replaced by a
            reference to ``input`` (see ``runtime._recording``).
        keys: The wrapper's shape keys ("input", "history", "output") that were set.
        calls: The model calls made during the run, appended after its ``RunRecorded``.
    """

    run_id: str
    input: list[Message]
    output: list[Message] = []
    status: str = "ok"
    history_version: Union[int, None] = None
    model: Union[str, None] = None
    latency_ms: float = 0.0
    error: Union[str, None] = None
    chain_input: Any = None
    keys: dict[str, str] = {}
    calls: list[ModelCalled] = []


def turn_events(turn: Turn, base_version: int) -> list[Event]:
    """The events of ``turn``, appended to a stream at ``base_version``.

    A saved turn's ``RunRecorded`` names its messages by the versions they get in this append.
    """
    run = RunRecorded(run_id=turn.run_id, status=turn.status,
                      history_version=turn.history_version or 0, model=turn.model,
                      latency_ms=turn.latency_ms, error=turn.error,
                      chain_input=turn.chain_input, keys=turn.keys)
    calls: list[Event] = list(turn.calls)
    inline: list[AnyMessage]
    if turn.status != "ok":
        inline = turn.input  # type: ignore[assignment]
        partial: list[AnyMessage] = turn.output  # type: ignore[assignment]
        return [msgspec.structs.replace(run, input=inline, output=partial), *calls]
    messages: list[Message] = [*turn.input, *turn.output]
    first = base_version + 1
    n_in = len(turn.input)
    run = msgspec.structs.replace(
        run, input_versions=list(range(first, first + n_in)),
        output_versions=list(range(first + n_in, first + len(messages))))
    return [*(MessageAppended(message=m) for m in messages), run,  # type: ignore[arg-type]
            *calls]


def turn_appends(turn: Turn, head: int, on_conflict: OnConflict, *,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[float, float], float] = random.uniform) -> TurnAppends:
    """The appends that record ``turn`` (I/O-free: ``record_turn`` and ``arecord_turn`` drive it).

    A saved turn is appended on the version it read (``head`` when it read none), because its
    ``RunRecorded`` names its messages by the versions they get in that append. When other
    turns got in first, "raise" gives up; "merge" appends it after them, after a short random
    wait, as often as it takes while the session moves on. A failed or cancelled turn's run
    names no versions and is appended unconditionally.

    Args:
        turn: The turn to record.
        head: The session's version, used when the turn read none.
        on_conflict: "merge" or "raise".
        clock: Seconds, monotonic (for the stall deadline).
        jitter: ``random.uniform``-shaped: a wait between its two bounds.

    Raises:
        ConcurrencyError: "raise" and the session moved on; or "merge" and the store kept
            reporting conflicts without its version moving for ``MERGE_STALL_SECONDS``.
    """
    if turn.status != "ok":
        yield 0.0, turn_events(turn, 0), None
        return
    base = turn.history_version if turn.history_version is not None else head
    conflict = yield 0.0, turn_events(turn, base), base
    if on_conflict == "raise":
        raise conflict
    seen, moved_at, tries = base, clock(), 1
    while True:
        if conflict.actual_version > seen:
            seen, moved_at = conflict.actual_version, clock()
        elif clock() - moved_at >= MERGE_STALL_SECONDS:
            raise _stalled(conflict, tries) from conflict
        base = conflict.actual_version
        ceiling = min(MERGE_BACKOFF_CAP_SECONDS, MERGE_BACKOFF_SECONDS * 2 ** min(tries, 16))
        wait = jitter(0.0, ceiling)
        tries += 1
        conflict = yield wait, turn_events(turn, base), base


def _stalled(conflict: ConcurrencyError, tries: int) -> ConcurrencyError:
    """The last conflict, saying why merging stopped."""
    return conflict.restated(
        f"{conflict}: gave up merging the turn after {tries} tries, the store reported "
        f"conflicts without moving past version {conflict.actual_version} for "
        f"{MERGE_STALL_SECONDS:g}s (MERGE_STALL_SECONDS)")


def turn_meta(turn: Turn) -> dict[str, Any]:
    """The append's meta for a turn: its run id and the history version it read."""
    return {"run_id": turn.run_id, "history_version": turn.history_version}


class RecordedTurn(msgspec.Struct, frozen=True):
    """A ``RunRecorded`` read back, with its messages and model calls resolved.

    Attributes:
        version: The version of the run's event.
        recorded_at: When the run was recorded.
        run: The event itself.
        input: The turn's input messages.
        output: The turn's output messages (partial for a cancelled run).
        complete: False when a message the run refers to is not in the records given (or was
            erased).
        calls: The ``ModelCalled`` events of the run, in call order (empty for runs recorded
            before model calls were).
    """

    version: int
    recorded_at: datetime
    run: RunRecorded
    input: list[Message]
    output: list[Message]
    complete: bool
    calls: list[ModelCalled] = []


def recorded_turns(records: Iterable[Record]) -> list[RecordedTurn]:
    """Every run among ``records`` (one stream's events, in order), with its messages."""
    by_version: dict[int, Message] = {}
    turns: list[RecordedTurn] = []
    # A run's calls follow it in its append: each goes to the latest run with its run id.
    latest: dict[str, int] = {}
    calls: dict[int, list[ModelCalled]] = {}
    for record in records:
        event = record.event
        if isinstance(event, MessageAppended):
            by_version[record.version] = event.message
        elif isinstance(event, ModelCalled):
            if event.run_id in latest:
                calls.setdefault(latest[event.run_id], []).append(event)
        elif isinstance(event, RunRecorded):
            wanted = [*event.input_versions, *event.output_versions]
            found = [by_version[v] for v in wanted if v in by_version]

            def pick(versions: Sequence[int]) -> list[Message]:
                return [by_version[v] for v in versions if v in by_version]

            turns.append(RecordedTurn(
                record.version, record.recorded_at, event,
                [*event.input, *pick(event.input_versions)],
                [*event.output, *pick(event.output_versions)],
                complete=len(found) == len(wanted)))
            latest[event.run_id] = len(turns) - 1
    if not calls:
        return turns
    return [msgspec.structs.replace(t, calls=calls[i]) if i in calls else t
            for i, t in enumerate(turns)]


def resolve_call(call: ModelCalled, history: Sequence[Message],
                 turn: RecordedTurn) -> tuple[list[Message], Union[Message, None], bool]:
    """A model call's request and response with their references resolved.

    ``history`` is the history the run read (as of ``turn.run.history_version``). The third
    value is False when a reference points past what is there (an erased message, say).
    """
    sources = {"history": history, "input": turn.input, "output": turn.output}
    complete = True

    def expand(part: Any) -> list[Message]:
        nonlocal complete
        if not isinstance(part, MessageRef):
            return [part]
        found = list(sources.get(part.source, ())[part.start:part.stop])
        complete = complete and len(found) == part.stop - part.start
        return found

    request = [m for part in call.request for m in expand(part)]
    response = None
    if call.response is not None:
        got = expand(call.response)
        response = got[0] if got else None
    return request, response, complete
