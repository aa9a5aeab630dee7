"""Folds of the log: per-session histories (current, as-of, window), the catalog, rebuild."""

from __future__ import annotations

from chatledger.eventstore import HistoryState, apply, fold, messages_of
from chatledger.projections._cache import HistoryCache, history_cache
from chatledger.projections._coerce import (
    as_message,
    from_langchain_object,
    is_langchain_message,
    type_name,
)
from chatledger.projections._history import ChatHistory, HistoryView, shared_store
from chatledger.projections._memory import InMemoryChatMessageHistory
from chatledger.projections._turns import (
    OnConflict,
    RecordedTurn,
    Turn,
    recorded_turns,
    resolve_call,
    turn_events,
)
from chatledger.projections._window import approximate_tokens, window

__all__ = [
    "ChatHistory",
    "HistoryCache",
    "HistoryState",
    "HistoryView",
    "InMemoryChatMessageHistory",
    "OnConflict",
    "RecordedTurn",
    "Turn",
    "apply",
    "approximate_tokens",
    "as_message",
    "fold",
    "from_langchain_object",
    "history_cache",
    "is_langchain_message",
    "messages_of",
    "recorded_turns",
    "resolve_call",
    "shared_store",
    "turn_events",
    "type_name",
    "window",
]
