"""The graph's messages channel as the thread's chat history.

A checkpoint stores only the messages it added; the history projection folds them into the
stream's history, and a checkpoint's messages are that history as of its version. When the
list lost or changed a message (``RemoveMessage``, an update by id), the checkpoint follows a
``HistoryCleared`` and carries the whole new list: the current history follows the graph and
``as_of`` keeps every earlier state.
"""

from __future__ import annotations

from typing import Any, cast

from langchain_core.messages import BaseMessage

from chatledger.eventstore import (
    AnyMessage,
    Event,
    EventStore,
    HistoryCleared,
    InvalidInputError,
    MessageAppended,
    SessionKey,
    validate_events,
)
from chatledger.runtime.langchain import from_langchain_messages, to_langchain_messages
from chatledger.runtime.langgraph._index import ThreadIndex

__all__ = ["current_messages", "history_change", "messages_at"]


def current_messages(store: EventStore, key: SessionKey, index: ThreadIndex) -> list[Any]:
    """The history at the index's version, as LangChain messages (cached until it moves)."""
    if index.messages is None or index.messages_version != index.version:
        stored = [] if index.version == 0 else store.load_history_at(key, version=index.version)[1]
        index.messages = to_langchain_messages(stored)
        index.messages_version = index.version
    return index.messages


def messages_at(store: EventStore, key: SessionKey, index: ThreadIndex, version: int) -> list[Any]:
    """The history as of ``version``: one as-of read, or the cache when nothing changed since."""
    if version >= index.history_version:
        return list(current_messages(store, key, index))
    return to_langchain_messages(store.load_history_at(key, version=version)[1])


def history_change(store: EventStore, key: SessionKey, index: ThreadIndex,
                   value: Any) -> tuple[list[Event], list[AnyMessage], bool]:
    """What a checkpoint's messages channel does to the history: (events, added, projected).

    A value that is not a list of messages stays in the checkpoint body and leaves the history
    alone; an absent channel is an empty one (and stays absent from the checkpoint).
    """
    present = value is not None
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(m, BaseMessage) for m in value):
        return [], [], False
    current = current_messages(store, key, index)
    n = len(current)
    # LangGraph hands the same message objects back turn after turn: identity first
    same = len(value) >= n and all(a is b or a == b
                                   for a, b in zip(current, value[:n], strict=False))
    try:
        added = cast(list[AnyMessage], from_langchain_messages(value[n:] if same else value))
        # stored, each must read back equal (a datetime in additional_kwargs would come back
        # as text): checked as the append checks it, before anything is written
        validate_events([MessageAppended(message=m) for m in added])
    except InvalidInputError:
        return [], [], False  # a message the history cannot hold: keep it in the body
    events: list[Event] = [] if same else [HistoryCleared(reason="langgraph: messages changed")]
    return events, added, present
