"""Stream helpers: adding chunks up, and driving a blocking iterator from async code."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["aaggregate", "add_chunks", "aggregate", "aiter_thread"]

T = TypeVar("T")

_DONE = object()


def add_chunks(left: Any, right: Any) -> Any:
    """Add two stream chunks: dicts merge key by key, addable values add, others are replaced."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = add_chunks(merged[key], value) if key in merged else value
        return merged
    try:
        return left + right
    except TypeError:
        return right


def aggregate(chunks: Iterable[Any]) -> Any:
    """The sum of a stream's chunks (see ``add_chunks``); None for an empty stream."""
    total: Any = _DONE
    for chunk in chunks:
        total = chunk if total is _DONE else add_chunks(total, chunk)
    return None if total is _DONE else total


async def aaggregate(chunks: AsyncIterator[Any]) -> Any:
    """``aggregate`` of an async stream."""
    total: Any = _DONE
    async for chunk in chunks:
        total = chunk if total is _DONE else add_chunks(total, chunk)
    return None if total is _DONE else total


def _next_or_done(iterator: Iterator[T]) -> T | object:
    return next(iterator, _DONE)


async def aiter_thread(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Drive a blocking iterator from a worker thread, one item at a time.

    Closing the async iterator early closes the underlying one (in a worker thread too).
    """
    context = contextvars.copy_context()
    try:
        while True:
            item = await asyncio.to_thread(context.run, _next_or_done, iterator)
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
