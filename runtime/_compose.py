"""Composition: ``RunnableSequence`` (``a | b``), ``RunnableParallel`` (a dict of runnables)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chatledger.eventstore import InvalidInputError
from chatledger.runtime._config import (
    ConfigurableFieldSpec,
    RunnableConfig,
    child_config,
    ensure_config,
)
from chatledger.runtime._lambda import RunnableGenerator, RunnableLambda
from chatledger.runtime._runnable import Runnable

__all__ = ["RunnableParallel", "RunnableSequence", "coerce_to_runnable"]


def coerce_to_runnable(thing: Any) -> Runnable[Any, Any]:
    """A runnable for ``thing``: itself, a dict as ``RunnableParallel``, a function as a lambda.

    A generator function becomes a ``RunnableGenerator`` (it receives the stream of input
    chunks); any other callable, ``operator.itemgetter`` included, a ``RunnableLambda``.

    Raises:
        InvalidInputError: ``thing`` is none of these.
    """
    if isinstance(thing, Runnable):
        return thing
    if isinstance(thing, Mapping):
        return RunnableParallel(dict(thing))
    if inspect.isgeneratorfunction(thing) or inspect.isasyncgenfunction(thing):
        return RunnableGenerator(thing)
    if callable(thing):
        return RunnableLambda(thing)
    raise InvalidInputError(
        f"expected a Runnable, a callable or a dict, got {type(thing).__name__}"
    )


def _specs(steps: list[Runnable[Any, Any]]) -> list[ConfigurableFieldSpec]:
    seen: dict[str, ConfigurableFieldSpec] = {}
    for step in steps:
        for spec in step.config_specs:
            seen.setdefault(spec.id, spec)
    return list(seen.values())


class RunnableSequence(Runnable[Any, Any]):
    """Steps run one after another, each on the previous step's output.

    Streaming passes chunks through: each step transforms the chunk stream of the step before,
    so the output streams when the last steps can stream (a chat model, a generator); steps that
    cannot stream see the summed input.

    Args:
        steps: Runnables, callables or dicts (coerced); nested sequences are flattened.
        name: The sequence's name.

    Raises:
        InvalidInputError: No steps, or a step that cannot be coerced.
    """

    def __init__(self, *steps: Any, name: str | None = None) -> None:
        flat: list[Runnable[Any, Any]] = []
        for step in steps:
            runnable = coerce_to_runnable(step)
            if isinstance(runnable, RunnableSequence) and runnable.name is None:
                flat.extend(runnable.steps)
            else:
                flat.append(runnable)
        if not flat:
            raise InvalidInputError("RunnableSequence needs at least one step")
        self.steps: tuple[Runnable[Any, Any], ...] = tuple(flat)
        self.name = name

    def __repr__(self) -> str:
        return " | ".join(repr(step) for step in self.steps)

    @property
    def first(self) -> Runnable[Any, Any]:
        """The first step."""
        return self.steps[0]

    @property
    def last(self) -> Runnable[Any, Any]:
        """The last step."""
        return self.steps[-1]

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Invoke each step on the previous output."""
        inner = child_config(ensure_config(config))
        for step in self.steps:
            input = step.invoke(input, inner)
        return input

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Async ``invoke``."""
        inner = child_config(ensure_config(config))
        for step in self.steps:
            input = await step.ainvoke(input, inner)
        return input

    def transform(self, inputs: Iterator[Any], config: RunnableConfig | None = None) -> Iterator[Any]:
        """Chain each step's ``transform`` over the previous step's output stream."""
        inner = child_config(ensure_config(config))
        stream: Iterator[Any] = inputs
        for step in self.steps:
            stream = step.transform(stream, inner)
        yield from stream

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[Any]:
        """Stream the output of the last step (see the class docstring)."""
        yield from self.transform(iter([input]), config)

    async def atransform(
        self, inputs: AsyncIterator[Any], config: RunnableConfig | None = None
    ) -> AsyncIterator[Any]:
        """Async ``transform``."""
        inner = child_config(ensure_config(config))
        stream: AsyncIterator[Any] = inputs
        for step in self.steps:
            stream = step.atransform(stream, inner)
        async for chunk in stream:
            yield chunk

    async def astream(self, input: Any, config: RunnableConfig | None = None) -> AsyncIterator[Any]:
        """Async ``stream``."""

        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(one(), config):
            yield chunk

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The fields of every step, each once."""
        return _specs(list(self.steps))

    def children(self) -> list[Runnable[Any, Any]]:
        """The steps."""
        return list(self.steps)


class RunnableParallel(Runnable[Any, dict[str, Any]]):
    """Runnables run on the same input; the output is a dict of their outputs by key.

    Args:
        steps: A dict of runnables, callables or dicts (coerced).
        **kwargs: More steps by keyword.

    Raises:
        InvalidInputError: A step that cannot be coerced.
    """

    def __init__(self, steps: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        merged = {**(steps or {}), **kwargs}
        self.steps: dict[str, Runnable[Any, Any]] = {
            key: coerce_to_runnable(value) for key, value in merged.items()
        }
        self.name = None

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.steps.items())
        return "{" + inner + "}"

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """Invoke every step on the input, in threads when there are several."""
        inner = child_config(ensure_config(config))
        if len(self.steps) <= 1:
            return {key: step.invoke(input, inner) for key, step in self.steps.items()}
        with ThreadPoolExecutor(max_workers=len(self.steps)) as pool:
            futures = {
                key: pool.submit(contextvars.copy_context().run, step.invoke, input, inner)
                for key, step in self.steps.items()
            }
            return {key: future.result() for key, future in futures.items()}

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """Await every step concurrently."""
        inner = child_config(ensure_config(config))
        results = await asyncio.gather(*(s.ainvoke(input, inner) for s in self.steps.values()))
        return dict(zip(self.steps, results, strict=True))

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``{key: chunk}`` as each step streams; the chunks add up to ``invoke``'s dict."""
        inner = child_config(ensure_config(config))
        if len(self.steps) == 1:
            [(key, step)] = self.steps.items()
            for chunk in step.stream(input, inner):
                yield {key: chunk}
            return
        out: queue.Queue[tuple[str, Any, BaseException | None, bool]] = queue.Queue()
        stop = threading.Event()

        def pump(key: str, step: Runnable[Any, Any]) -> None:
            try:
                for chunk in step.stream(input, inner):
                    if stop.is_set():
                        return
                    out.put((key, chunk, None, False))
            except BaseException as e:
                out.put((key, None, e, True))
                return
            out.put((key, None, None, True))

        with ThreadPoolExecutor(max_workers=len(self.steps)) as pool:
            for key, step in self.steps.items():
                pool.submit(contextvars.copy_context().run, pump, key, step)
            running = len(self.steps)
            try:
                while running:
                    key, chunk, error, done = out.get()
                    if error is not None:
                        raise error
                    if done:
                        running -= 1
                    else:
                        yield {key: chunk}
            finally:
                stop.set()

    async def astream(
        self, input: Any, config: RunnableConfig | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Async ``stream``."""
        inner = child_config(ensure_config(config))
        out: asyncio.Queue[tuple[str, Any, BaseException | None, bool]] = asyncio.Queue()

        async def pump(key: str, step: Runnable[Any, Any]) -> None:
            try:
                async for chunk in step.astream(input, inner):
                    await out.put((key, chunk, None, False))
            except Exception as e:
                await out.put((key, None, e, True))
                return
            await out.put((key, None, None, True))

        tasks = [asyncio.ensure_future(pump(k, s)) for k, s in self.steps.items()]
        running = len(tasks)
        try:
            while running:
                key, chunk, error, done = await out.get()
                if error is not None:
                    raise error
                if done:
                    running -= 1
                else:
                    yield {key: chunk}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The fields of every step, each once."""
        return _specs(list(self.steps.values()))

    def children(self) -> list[Runnable[Any, Any]]:
        """The steps."""
        return list(self.steps.values())
