"""Folds of the log: per-session histories (current, as-of, window), the catalog, rebuild."""

from __future__ import annotations

from projections._fold import HistoryState, apply, fold, messages_of
from projections._history import ChatHistory, HistoryView, shared_store
from projections._window import approximate_tokens, window

__all__ = [
    "ChatHistory",
    "HistoryState",
    "HistoryView",
    "apply",
    "approximate_tokens",
    "fold",
    "messages_of",
    "shared_store",
    "window",
]
