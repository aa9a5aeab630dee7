"""The ``Runnable`` base: one abstract ``invoke``, its async/stream/batch twins, ``|`` composition.

Everything else (sequences, parallel maps, lambdas, bindings) is a small immutable wrapper built
on this base. A config is a plain dict (see ``runtime._config``); nothing here keeps state
between calls.
"""

from __future__ import annotations

import asyncio
import contextvars
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from chatledger.runtime._config import (
    ConfigurableFieldSpec,
    RunnableConfig,
    ensure_config,
    get_config_list,
    merge_configs,
)

if TYPE_CHECKING:
    from chatledger.runtime._compose import RunnableSequence

__all__ = [
    "Input",
    "Output",
    "Runnable",
    "RunnableBinding",
    "add_chunks",
    "aggregate",
    "aiter_thread",
]

Input = TypeVar("Input")
Output = TypeVar("Output")
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


async def _aaggregate(chunks: AsyncIterator[Any]) -> Any:
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


class Runnable(ABC, Generic[Input, Output]):
    """A unit of work that can be invoked, batched, streamed and composed with ``|``.

    Subclasses implement ``invoke``; the async, batch and stream methods derive from it unless
    a subclass has something better to offer.
    """

    name: str | None = None

    # -- the one abstract method -----------------------------------------------------------
    @abstractmethod
    def invoke(self, input: Input, config: RunnableConfig | None = None) -> Output:
        """Run on one input and return the output."""

    # -- derived twins ---------------------------------------------------------------------
    async def ainvoke(self, input: Input, config: RunnableConfig | None = None) -> Output:
        """``invoke`` in a worker thread, so a blocking implementation never blocks the loop."""
        context = contextvars.copy_context()
        return await asyncio.to_thread(context.run, self.invoke, input, config)

    def batch(
        self,
        inputs: Sequence[Input],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Output]:
        """Invoke on each input, in threads bounded by the config's ``max_concurrency``.

        ``config`` is one config for every input or a list with one config per input.

        Raises:
            InvalidInputError: A config list whose length differs from ``inputs``.
        """
        inputs = list(inputs)
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))

        def one(pair: tuple[Input, RunnableConfig]) -> Any:
            try:
                return self.invoke(pair[0], pair[1])
            except Exception as e:
                if return_exceptions:
                    return e
                raise

        if len(inputs) == 1:
            return [one((inputs[0], configs[0]))]
        workers = configs[0].get("max_concurrency")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, pair)
                       for pair in zip(inputs, configs, strict=True)]
            return [f.result() for f in futures]

    async def abatch(
        self,
        inputs: Sequence[Input],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Output]:
        """``ainvoke`` on each input concurrently, at most ``max_concurrency`` at a time.

        Raises:
            InvalidInputError: A config list whose length differs from ``inputs``.
        """
        inputs = list(inputs)
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        limit = configs[0].get("max_concurrency")
        gate = asyncio.Semaphore(limit) if limit else None

        async def one(item: Input, item_config: RunnableConfig) -> Any:
            try:
                if gate is None:
                    return await self.ainvoke(item, item_config)
                async with gate:
                    return await self.ainvoke(item, item_config)
            except Exception as e:
                if return_exceptions:
                    return e
                raise

        return list(await asyncio.gather(*(one(i, c) for i, c in zip(inputs, configs, strict=True))))

    def stream(self, input: Input, config: RunnableConfig | None = None) -> Iterator[Output]:
        """Yield the output in chunks; by default the whole output as one chunk."""
        yield self.invoke(input, config)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None
    ) -> AsyncIterator[Output]:
        """Async ``stream``; by default the whole output of ``ainvoke`` as one chunk."""
        yield await self.ainvoke(input, config)

    def transform(
        self, inputs: Iterator[Input], config: RunnableConfig | None = None
    ) -> Iterator[Output]:
        """Stream over a stream of input chunks; by default sum the input, then ``stream``."""
        yield from self.stream(aggregate(inputs), config)

    async def atransform(
        self, inputs: AsyncIterator[Input], config: RunnableConfig | None = None
    ) -> AsyncIterator[Output]:
        """Async ``transform``; by default sum the input, then ``astream``."""
        async for chunk in self.astream(await _aaggregate(inputs), config):
            yield chunk

    # -- composition -----------------------------------------------------------------------
    def __or__(self, other: Any) -> RunnableSequence:
        from chatledger.runtime._compose import RunnableSequence, coerce_to_runnable

        return RunnableSequence(self, coerce_to_runnable(other))

    def __ror__(self, other: Any) -> RunnableSequence:
        from chatledger.runtime._compose import RunnableSequence, coerce_to_runnable

        return RunnableSequence(coerce_to_runnable(other), self)

    def pipe(self, *others: Any, name: str | None = None) -> RunnableSequence:
        """``self | others[0] | others[1] ...`` as one sequence."""
        from chatledger.runtime._compose import RunnableSequence, coerce_to_runnable

        return RunnableSequence(self, *(coerce_to_runnable(o) for o in others), name=name)

    def with_config(
        self, config: RunnableConfig | None = None, **options: Any
    ) -> RunnableBinding[Input, Output]:
        """This runnable with config merged under every call's config.

        Raises:
            InvalidInputError: The config is not a dict.
        """
        return RunnableBinding(self, merge_configs(config, options))

    # -- introspection ---------------------------------------------------------------------
    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The ``configurable`` fields this runnable reads."""
        return []

    def get_name(self) -> str:
        """The runnable's name: ``name`` if set, else its class name."""
        return self.name or type(self).__name__

    def children(self) -> list[Runnable[Any, Any]]:
        """The runnables this one wraps (used to find the chat model inside a chain)."""
        return []


class RunnableBinding(Runnable[Input, Output]):
    """A runnable with a config merged under the config of every call.

    Args:
        bound: The runnable to call.
        config: The config to merge under each call's config.
    """

    def __init__(self, bound: Runnable[Input, Output], config: RunnableConfig | None = None) -> None:
        self.bound = bound
        self.config = ensure_config(config)

    def __repr__(self) -> str:
        return f"RunnableBinding({self.bound!r}, config={self.config!r})"

    def _merge(self, config: RunnableConfig | None) -> RunnableConfig:
        return merge_configs(self.config, config)

    def invoke(self, input: Input, config: RunnableConfig | None = None) -> Output:
        """Invoke the bound runnable with the merged config."""
        return self.bound.invoke(input, self._merge(config))

    async def ainvoke(self, input: Input, config: RunnableConfig | None = None) -> Output:
        """Async ``invoke``."""
        return await self.bound.ainvoke(input, self._merge(config))

    def batch(
        self,
        inputs: Sequence[Input],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Output]:
        """Batch the bound runnable with each item's config merged."""
        configs = [self._merge(c) for c in get_config_list(config, len(inputs))]
        return self.bound.batch(inputs, configs, return_exceptions=return_exceptions)

    async def abatch(
        self,
        inputs: Sequence[Input],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Output]:
        """Async ``batch``."""
        configs = [self._merge(c) for c in get_config_list(config, len(inputs))]
        return await self.bound.abatch(inputs, configs, return_exceptions=return_exceptions)

    def stream(self, input: Input, config: RunnableConfig | None = None) -> Iterator[Output]:
        """Stream the bound runnable with the merged config."""
        yield from self.bound.stream(input, self._merge(config))

    async def astream(
        self, input: Input, config: RunnableConfig | None = None
    ) -> AsyncIterator[Output]:
        """Async ``stream``."""
        async for chunk in self.bound.astream(input, self._merge(config)):
            yield chunk

    def transform(
        self, inputs: Iterator[Input], config: RunnableConfig | None = None
    ) -> Iterator[Output]:
        """Transform with the bound runnable and the merged config."""
        yield from self.bound.transform(inputs, self._merge(config))

    async def atransform(
        self, inputs: AsyncIterator[Input], config: RunnableConfig | None = None
    ) -> AsyncIterator[Output]:
        """Async ``transform``."""
        async for chunk in self.bound.atransform(inputs, self._merge(config)):
            yield chunk

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The bound runnable's fields."""
        return self.bound.config_specs

    def get_name(self) -> str:
        """The bound runnable's name unless this binding has one."""
        return self.name or self.bound.get_name()

    def children(self) -> list[Runnable[Any, Any]]:
        """The bound runnable."""
        return [self.bound]

