"""``RunnableLambda`` and ``RunnableGenerator``: plain functions as runnables."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from chatledger.eventstore import InvalidInputError
from chatledger.runtime._config import RunnableConfig, child_config, ensure_config
from chatledger.runtime._runnable import Input, Output, Runnable, register_coercion
from chatledger.runtime._streams import aggregate, aiter_thread, closing_stream

__all__ = ["RunnableGenerator", "RunnableLambda", "accepts_config"]


def accepts_config(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a parameter named ``config`` (it then receives the run's config)."""
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins such as operator.itemgetter have no signature
        return False
    return "config" in parameters


def _name_of(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else type(func).__name__


class RunnableLambda(Runnable[Input, Output]):
    """A function as a runnable.

    The function takes the input (and ``config=`` if it has a parameter of that name). A
    coroutine function serves ``ainvoke``; a generator function streams what it yields (and
    ``invoke`` returns the sum of it). A function that returns a runnable has that runnable
    invoked on the same input.

    Args:
        func: A sync function, coroutine function or generator function.
        afunc: An async twin used by the async methods.
        name: The runnable's name; defaults to the function's.

    Raises:
        InvalidInputError: ``func`` is not callable.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        afunc: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if not callable(func):
            raise InvalidInputError(f"RunnableLambda needs a callable, got {type(func).__name__}")
        self.func: Callable[..., Any] | None = func
        self.afunc = afunc
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            self.func, self.afunc = None, func
        self._with_config = [f for f in (self.func, self.afunc) if f is not None and accepts_config(f)]
        self.name = name or _name_of(func)

    def __repr__(self) -> str:
        return f"RunnableLambda({self.name})"

    def _call(self, func: Callable[..., Any], input: Any, config: RunnableConfig) -> Any:
        if func in self._with_config:
            return func(input, config=child_config(config))
        return func(input)

    def _sync(self) -> Callable[..., Any]:
        if self.func is None:
            raise InvalidInputError(
                f"{self.name} is an async function; call ainvoke/astream instead of invoke/stream"
            )
        return self.func

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Call the function on the input."""
        config = ensure_config(config)
        func = self._sync()
        if inspect.isgeneratorfunction(func):
            return aggregate(self._call(func, input, config))
        output = self._call(func, input, config)
        if isinstance(output, Runnable):
            return output.invoke(input, child_config(config))
        return output

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Await the async function, or run the sync one in a worker thread."""
        if self.afunc is None:
            return await super().ainvoke(input, config)
        config = ensure_config(config)
        if inspect.isasyncgenfunction(self.afunc):
            async with closing_stream(self._call(self.afunc, input, config)) as stream:
                return aggregate([chunk async for chunk in stream])
        output = await self._call(self.afunc, input, config)
        if isinstance(output, Runnable):
            return await output.ainvoke(input, child_config(config))
        return output

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[Any]:
        """Yield what a generator function yields, else the single output."""
        func = self._sync()
        if inspect.isgeneratorfunction(func):
            yield from self._call(func, input, ensure_config(config))
        else:
            yield self.invoke(input, config)

    async def astream(self, input: Any, config: RunnableConfig | None = None) -> AsyncIterator[Any]:
        """Async ``stream``; a sync generator function runs in a worker thread."""
        config = ensure_config(config)
        if self.afunc is not None and inspect.isasyncgenfunction(self.afunc):
            async with closing_stream(self._call(self.afunc, input, config)) as stream:
                async for chunk in stream:
                    yield chunk
        elif self.afunc is None and self.func is not None and inspect.isgeneratorfunction(self.func):
            async with closing_stream(aiter_thread(self._call(self.func, input, config))) as stream:
                async for chunk in stream:
                    yield chunk
        else:
            yield await self.ainvoke(input, config)


class RunnableGenerator(Runnable[Input, Output]):
    """A generator function over a stream of input chunks, as a runnable.

    ``transform(chunks)`` yields output chunks as input chunks arrive, so a parser placed after
    a streaming model streams too. This is what a generator function becomes when piped.

    Args:
        transform: ``def f(chunks: Iterator) -> Iterator`` (sync), or an async generator
            function over an async iterator.
        atransform: The async twin, when ``transform`` is sync.
        name: The runnable's name; defaults to the function's.

    Raises:
        InvalidInputError: ``transform`` is not a generator function.
    """

    def __init__(
        self,
        transform: Callable[..., Any],
        atransform: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self._fn: Callable[..., Any] | None = transform
        self._afn = atransform
        if inspect.isasyncgenfunction(transform):
            self._fn, self._afn = None, transform
        elif not inspect.isgeneratorfunction(transform):
            raise InvalidInputError(
                f"RunnableGenerator needs a generator function, got {transform!r}"
            )
        self.name = name or _name_of(transform)

    def __repr__(self) -> str:
        return f"RunnableGenerator({self.name})"

    def transform(self, inputs: Iterator[Any], config: RunnableConfig | None = None) -> Iterator[Any]:
        """Feed the input chunks to the generator function and yield its output."""
        if self._fn is None:
            raise InvalidInputError(f"{self.name} is async; call ainvoke/astream instead")
        config = ensure_config(config)
        if accepts_config(self._fn):
            yield from self._fn(inputs, config=child_config(config))
        else:
            yield from self._fn(inputs)

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[Any]:
        """``transform`` over a one-chunk input."""
        yield from self.transform(iter([input]), config)

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """The sum of what ``stream`` yields."""
        return aggregate(self.stream(input, config))

    async def atransform(
        self, inputs: AsyncIterator[Any], config: RunnableConfig | None = None
    ) -> AsyncIterator[Any]:
        """Async ``transform``; a sync function runs in a worker thread."""
        config = ensure_config(config)
        if self._afn is not None:
            gen = (self._afn(inputs, config=child_config(config)) if accepts_config(self._afn)
                   else self._afn(inputs))
            # The function may stop without closing its input stream; close both.
            async with closing_stream(inputs), closing_stream(gen):
                async for chunk in gen:
                    yield chunk
            return
        items = [item async for item in inputs]
        async with closing_stream(aiter_thread(self.transform(iter(items), config))) as stream:
            async for chunk in stream:
                yield chunk

    async def astream(self, input: Any, config: RunnableConfig | None = None) -> AsyncIterator[Any]:
        """``atransform`` over a one-chunk input."""

        async def one() -> AsyncIterator[Any]:
            yield input

        async with closing_stream(self.atransform(one(), config)) as stream:
            async for chunk in stream:
                yield chunk

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """The sum of what ``astream`` yields."""
        async with closing_stream(self.astream(input, config)) as stream:
            return aggregate([chunk async for chunk in stream])


register_coercion(lambda thing: inspect.isgeneratorfunction(thing)
                  or inspect.isasyncgenfunction(thing), RunnableGenerator)
register_coercion(callable, RunnableLambda)
