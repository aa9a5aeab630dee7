"""Stream helpers: adding chunks up, closing async streams, driving a blocking iterator."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

__all__ = ["aaggregate", "add_chunks", "aggregate", "aiter_thread", "closing_stream"]

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


class _Closing(Generic[T]):
    # A class, not an ``asynccontextmanager``: that would be an async generator itself, which
    # ``asyncio.run`` may close on its own at shutdown, before the stream it guards.
    __slots__ = ("stream",)

    def __init__(self, stream: AsyncIterator[T]) -> None:
        self.stream = stream

    async def __aenter__(self) -> AsyncIterator[T]:
        return self.stream

    async def __aexit__(self, *exc: object) -> None:
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            await aclose()


def closing_stream(stream: AsyncIterator[T]) -> AbstractAsyncContextManager[AsyncIterator[T]]:
    """``stream``, closed (``aclose``, when it has one) as the block ends, early or not.

    ``async for`` never closes what it iterates: an async generator left suspended by an early
    exit is finalised later, by the event loop in a task of its own. Every runtime generator
    closes the streams it consumes this way, so closing the outermost one closes the whole
    chain at once, and what runs on closing (a chat model reporting a cancelled call to the
    turn's recorder, an HTTP response being released) is done before ``aclose()`` returns.
    """
    return _Closing(stream)


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
