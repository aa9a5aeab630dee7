"""The history projection and the session catalog, defined once for every backend.

``projection_step`` says what one event does to a session's history; ``apply``/``fold`` is
that fold in memory (the reference the tables are tested against, and what replay tools use on
raw records); ``projection_ops`` turns the same steps into table operations, which each backend
executes with its own SQL inside the append's transaction.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, NamedTuple, Union

import msgspec

from chatledger.eventstore import _codec
from chatledger.eventstore._append import Prepared
from chatledger.eventstore._errors import InvalidInputError
from chatledger.eventstore._events import (
    AnyEvent,
    CheckpointSaved,
    Event,
    HistoryCleared,
    MessageAppended,
    MessageRedacted,
    Record,
    SessionForked,
    SessionTagged,
    ThreadDeleted,
)
from chatledger.eventstore._keys import SessionKey
from chatledger.eventstore._messages import Message
from chatledger.eventstore._store import check_limit

__all__ = [
    "APPENDED_PREFIX",
    "ChangeTags",
    "DropVersion",
    "HistoryRow",
    "HistoryState",
    "InsertRows",
    "MarkClear",
    "ProjectionOp",
    "ProjectionStep",
    "Statement",
    "TableWrites",
    "appended_rows",
    "apply",
    "fold",
    "merge_tags",
    "messages_of",
    "prepared_steps",
    "projection_ops",
    "projection_step",
    "sessions_query",
    "stored_step",
    "table_writes",
]


class ProjectionStep(msgspec.Struct):
    """What one event does to the history projection and the catalog.

    ``messages`` are the messages it adds, in order: objects when the step comes from an
    event, their JSON text when it comes from a stored row (so a replay of the log neither
    decodes nor re-encodes them).
    """

    messages: Sequence[Message | str]
    clears: bool = False
    redacts: Union[int, None] = None
    tags_added: list[str] = []
    tags_removed: list[str] = []


_NO_STEP = ProjectionStep([])


def projection_step(event: AnyEvent | Event) -> ProjectionStep:
    """The pure fold step of the history projection."""
    match event:
        case MessageAppended(message=message):
            return ProjectionStep([message])
        case SessionForked(messages=messages):
            return ProjectionStep(list(messages))
        case HistoryCleared() | ThreadDeleted():
            return ProjectionStep([], clears=True)
        case CheckpointSaved(messages=messages):
            # a LangGraph checkpoint carries the messages it added to the thread's history
            return ProjectionStep(list(messages))
        case MessageRedacted(version=version):
            return ProjectionStep([], redacts=version)
        case SessionTagged(added=added, removed=removed):
            return ProjectionStep([], tags_added=added, tags_removed=removed)
        case _:
            return _NO_STEP


APPENDED_PREFIX = '{"type":"message_appended","message":'
_NO_HISTORY = frozenset({"run_recorded", "run_recorded_v2", "model_called",
                         "checkpoint_writes_saved", "checkpoints_deleted"})


def stored_step(type_: str, data: str | None) -> ProjectionStep:
    """``projection_step`` of a stored event, without decoding what the fold does not need.

    A stored ``MessageAppended`` is its tag followed by the message exactly as ``encode`` wrote
    it, so the message's JSON is a slice of the payload. Anything else (an upcast tag, an odd
    encoding) takes the full path.
    """
    if data is None or type_ in _NO_HISTORY:
        return _NO_STEP
    if type_ == "message_appended" and data.startswith(APPENDED_PREFIX) and data[-1] == "}":
        return ProjectionStep([data[len(APPENDED_PREFIX):-1]])
    return projection_step(_codec.decode_event(type_, data))


def prepared_steps(prepared: Sequence[Prepared],
                   first_version: int) -> list[tuple[int, ProjectionStep]]:
    """The steps of an append's events, by version: a message from its encoding (no second
    encode), any other event from the event itself (no decode: ``prepare`` checked that its
    encoding reads back equal)."""
    out = []
    for i, p in enumerate(prepared):
        if p.type == "message_appended" or p.type in _NO_HISTORY:
            step = stored_step(p.type, p.data)
        else:
            step = projection_step(p.event)
        out.append((first_version + i, step))
    return out


def appended_rows(stream_id: str, prepared: Sequence[Prepared],
                  first_version: int) -> list[HistoryRow] | None:
    """The history rows of an append that only adds messages (and events the history does
    not hold), as ``projection_ops`` would insert them; None for any other append.

    Each message's row is the slice of its stored payload that ``stored_step`` takes, so a
    turn's projection costs no step, operation or statement objects.
    """
    rows: list[HistoryRow] = []
    cut = len(APPENDED_PREFIX)
    for i, p in enumerate(prepared):
        if p.type == "message_appended":
            data = p.data
            if not (data.startswith(APPENDED_PREFIX) and data[-1] == "}"):
                return None
            rows.append((stream_id, first_version + i, 0, data[cut:-1]))
        elif p.type not in _NO_HISTORY:
            return None
    return rows


# -- the fold in memory --------------------------------------------------------------------
HistoryState = tuple[tuple[int, Message], ...]
"""The fold's state: each current message with the version of the event that brought it in."""


def apply(state: HistoryState, version: int, event: AnyEvent | Event) -> HistoryState:
    """One step of the fold: the history after ``event`` (stored at ``version``)."""
    step = projection_step(event)
    if step.clears:
        return ()
    if step.redacts is not None:
        state = tuple(item for item in state if item[0] != step.redacts)
    if step.messages:
        state = (*state, *((version, m) for m in step.messages if isinstance(m, Message)))
    return state


def fold(records: Iterable[Record], state: HistoryState = ()) -> HistoryState:
    """Fold records of one stream, in version order, into the history state."""
    for record in records:
        state = apply(state, record.version, record.event)
    return state


def messages_of(state: HistoryState) -> list[Message]:
    """The messages of a fold state, in order."""
    return [message for _, message in state]


# -- the fold as table operations ----------------------------------------------------------
HistoryRow = tuple[str, int, int, str]
"""A row of the history projection: stream_id, version, index within the event, message JSON."""


class InsertRows(msgspec.Struct, frozen=True):
    """Insert these history rows."""

    rows: list[HistoryRow]


class MarkClear(msgspec.Struct, frozen=True):
    """Record a clear at ``version``; the catalog's count restarts at zero."""

    version: int


class DropVersion(msgspec.Struct, frozen=True):
    """Delete the history rows of the event at ``version``, then recount the current history."""

    version: int


class ChangeTags(msgspec.Struct, frozen=True):
    """Add and remove catalog tags."""

    added: list[str]
    removed: list[str]


ProjectionOp = Union[InsertRows, MarkClear, DropVersion, ChangeTags]


def _text(message: Message | str) -> str:
    return message if isinstance(message, str) else _codec.encode(message).decode()


def projection_ops(
    stream_id: str, items: Sequence[tuple[int, AnyEvent | Event | ProjectionStep]]
) -> tuple[list[ProjectionOp], int]:
    """What applying events of one stream does to the projection tables, in order.

    The second value is how many messages to add to the catalog's count afterwards; the
    caller folds it into its update of the stream row, so a plain append writes that row once.
    """
    ops: list[ProjectionOp] = []
    pending: list[HistoryRow] = []
    added = 0
    for version, event in items:
        step = event if isinstance(event, ProjectionStep) else projection_step(event)
        for idx, message in enumerate(step.messages):
            pending.append((stream_id, version, idx, _text(message)))
        added += len(step.messages)
        if step.clears:
            # rows of this batch before the clear are history, not current: inserted with
            # versions at or below the clear, loads skip them.
            ops.append(MarkClear(version))
            added = 0
        if step.redacts is not None:
            if pending:
                ops.append(InsertRows(pending))
                pending = []
            ops.append(DropVersion(step.redacts))
            added = 0  # the recount after the drop includes everything inserted so far
        if step.tags_added or step.tags_removed:
            ops.append(ChangeTags(step.tags_added, step.tags_removed))
    if pending:
        ops.append(InsertRows(pending))
    return ops, added


def merge_tags(stored: str, change: ChangeTags) -> str:
    """The catalog's tags column (a sorted JSON list) after ``change``."""
    tags = set(_codec.decode_json(stored)) | set(change.added)
    return _codec.encode(sorted(tags - set(change.removed))).decode()


class Statement(NamedTuple):
    """One statement a projection operation runs, named as in each backend's SQL module.

    ``many`` runs it once per row of ``params``; ``read`` sends its first row's first column
    back into ``table_writes``.
    """

    name: str
    params: Any
    many: bool = False
    read: bool = False


TableWrites = Generator[Statement, Any, None]


def table_writes(stream_id: str, ops: Sequence[ProjectionOp]) -> TableWrites:
    """The statements that carry out ``ops`` on one stream, in order: the one definition both
    backends execute, each with its own SQL and driver."""
    for op in ops:
        match op:
            case InsertRows(rows=rows):
                yield Statement("INSERT_HISTORY", rows, many=True)
            case MarkClear(version=version):
                yield Statement("INSERT_CLEAR", (stream_id, version))
                yield Statement("CLEAR_CATALOG", (version, stream_id))
            case DropVersion(version=version):
                yield Statement("DELETE_HISTORY_VERSION", (stream_id, version))
                yield Statement("RECOUNT_CURRENT", (stream_id,))
            case ChangeTags():
                stored = yield Statement("GET_TAGS", (stream_id,), read=True)
                yield Statement("SET_TAGS", (merge_tags(stored, op), stream_id))


# -- the catalog ---------------------------------------------------------------------------
def sessions_query(
    template: str, key_filter: dict[str, str], after: str | None, limit: int, *,
    true: str, part_filter: str, after_filter: str,
) -> tuple[str, tuple[Any, ...]]:
    """The catalog query for ``sessions()``: one ``part_filter`` per key part, then the cursor.

    The SQL pieces come from the backend's SQL module; this builds the same query shape for all.

    Raises:
        InvalidInputError: A bad limit or cursor.
        InvalidKeyError: A bad key part in the filter.
    """
    check_limit(limit)
    filters = [true]
    params: list[Any] = []
    for name, value in sorted(key_filter.items()):
        SessionKey(**{name: value})  # validates the part, naming it on error
        filters.append(part_filter)
        params += [name, value]
    if after is not None:
        moment, sep, sid = str(after).partition("|")
        if not sep or not sid:
            raise InvalidInputError(f"bad sessions cursor {after!r}")
        filters.append(after_filter)
        params += [moment, moment, sid]
    return template.format(filters=" AND ".join(filters)), (*params, limit)
