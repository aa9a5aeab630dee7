"""The history projection as a pure fold over the log.

The stores materialise the same fold in tables inside each append's transaction; this module
is the reference they are tested against, and what replay tools use on raw records.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatledger.eventstore import (
    Event,
    HistoryCleared,
    Message,
    MessageAppended,
    MessageRedacted,
    PayloadErased,
    Record,
    SessionForked,
)

__all__ = ["HistoryState", "apply", "fold", "messages_of"]

HistoryState = tuple[tuple[int, Message], ...]
"""The fold's state: each current message with the version of the event that brought it in."""


def apply(state: HistoryState, version: int, event: Event) -> HistoryState:
    """One step of the fold: the history after ``event`` (stored at ``version``)."""
    match event:
        case MessageAppended(message=message):
            return (*state, (version, message))
        case SessionForked(messages=messages):
            return (*state, *((version, m) for m in messages))
        case HistoryCleared():
            return ()
        case MessageRedacted(version=target):
            return tuple(item for item in state if item[0] != target)
        case PayloadErased():
            return state
        case _:
            return state


def fold(records: Iterable[Record], state: HistoryState = ()) -> HistoryState:
    """Fold records of one stream, in version order, into the history state."""
    for record in records:
        state = apply(state, record.version, record.event)
    return state


def messages_of(state: HistoryState) -> list[Message]:
    """The messages of a fold state, in order."""
    return [message for _, message in state]
