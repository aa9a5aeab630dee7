"""Registers LangChain runnables with ``coerce_to_runnable`` and LangChain histories with
``adapt_history``, without importing LangChain.

The tests look at the class's own ancestry (module names only), so ``langchain_core`` is
imported only when an object that comes from it is actually met; the bridges themselves live
in ``chatledger.runtime.langchain``.
"""

from __future__ import annotations

from typing import Any

from chatledger.runtime._histories import TurnHistory, register_history_adapter
from chatledger.runtime._runnable import Runnable, register_coercion

__all__ = ["is_langchain_history", "is_langchain_object"]


def is_langchain_object(thing: Any) -> bool:
    """True when ``thing``'s class or one of its bases is defined in ``langchain_core``."""
    return any(cls.__module__.startswith("langchain_core.") for cls in type(thing).__mro__)


def is_langchain_history(thing: Any) -> bool:
    """True for a LangChain ``BaseChatMessageHistory`` (chatledger's own LangChain one too)."""
    return any(cls.__name__ == "BaseChatMessageHistory"
               and cls.__module__ == "langchain_core.chat_history" for cls in type(thing).__mro__)


def _history(thing: Any) -> TurnHistory:
    from chatledger.runtime.langchain import from_langchain_history

    return from_langchain_history(thing)


def _bridge(thing: Any) -> Runnable[Any, Any]:
    from chatledger.runtime.langchain import from_langchain_runnable

    return from_langchain_runnable(thing)


# ahead of ``callable``: a LangChain tool is callable, but must be invoked as a runnable
register_coercion(is_langchain_object, _bridge, first=True)
register_history_adapter(is_langchain_history, _history)
