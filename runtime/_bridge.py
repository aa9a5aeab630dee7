"""Registers LangChain runnables with ``coerce_to_runnable``, without importing LangChain.

The test looks at the class's own ancestry (module names only), so ``langchain_core`` is
imported only when an object that comes from it is actually coerced; the bridge itself lives
in ``chatledger.runtime.langchain``.
"""

from __future__ import annotations

from typing import Any

from chatledger.runtime._runnable import Runnable, register_coercion

__all__ = ["is_langchain_object"]


def is_langchain_object(thing: Any) -> bool:
    """True when ``thing``'s class or one of its bases is defined in ``langchain_core``."""
    return any(cls.__module__.startswith("langchain_core.") for cls in type(thing).__mro__)


def _bridge(thing: Any) -> Runnable[Any, Any]:
    from chatledger.runtime.langchain import from_langchain_runnable

    return from_langchain_runnable(thing)


# ahead of ``callable``: a LangChain tool is callable, but must be invoked as a runnable
register_coercion(is_langchain_object, _bridge, first=True)
