"""The ``Runnable`` base: one abstract ``invoke``, its async/stream/batch twins, ``|`` composition.

``a | b`` builds a ``RunnableSequence``, whose steps are coerced by ``coerce_to_runnable``: a
runnable is itself; anything else goes through the coercions other modules register here (a
dict becomes ``RunnableParallel``, a function ``RunnableLambda``, a LangChain runnable its
bridge), so this base depends on none of them. A config is a plain dict (see
``runtime._config``); nothing here keeps state between calls.
"""

from __future__ import annotations

import asyncio
import contextvars
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from chatledger.eventstore import InvalidInputError
from chatledger.runtime._config import (
    ConfigurableFieldSpec,
    RunnableConfig,
    child_config,
    ensure_config,
    get_config_list,
    merge_configs,
)
from chatledger.runtime._schema import schema_model, type_args
from chatledger.runtime._streams import aaggregate, aggregate, closing_stream

__all__ = [
    "Input",
    "Output",
    "Runnable",
    "RunnableBinding",
    "RunnableSequence",
    "coerce_to_runnable",
    "register_coercion",
    "step_specs",
]

Input = TypeVar("Input")
Output = TypeVar("Output")

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
        async with closing_stream(self.astream(await aaggregate(inputs), config)) as stream:
            async for chunk in stream:
                yield chunk

    # -- composition -----------------------------------------------------------------------
    def __or__(self, other: Any) -> RunnableSequence:
        return RunnableSequence(self, other)

    def __ror__(self, other: Any) -> RunnableSequence:
        return RunnableSequence(other, self)

    def pipe(self, *others: Any, name: str | None = None) -> RunnableSequence:
        """``self | others[0] | others[1] ...`` as one sequence."""
        return RunnableSequence(self, *others, name=name)

    def with_config(
        self, config: RunnableConfig | None = None, **options: Any
    ) -> RunnableBinding[Input, Output]:
        """This runnable with config merged under every call's config.

        Raises:
            InvalidInputError: The config is not a dict.
        """
        return RunnableBinding(self, merge_configs(config, options))

    # -- introspection ---------------------------------------------------------------------
    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        """The input's schema: a pydantic model ``<Name>Input`` (a JSON Schema dict without
        pydantic), from the declared input type (``RunnableLambda[int, str]``), else any."""
        return schema_model(f"{self.get_name()}Input", type_args(self)[0])

    def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
        """The output's schema: a pydantic model ``<Name>Output`` (see ``get_input_schema``)."""
        return schema_model(f"{self.get_name()}Output", type_args(self)[1])

    @property
    def input_schema(self) -> Any:
        """``get_input_schema()``."""
        return self.get_input_schema()

    @property
    def output_schema(self) -> Any:
        """``get_output_schema()``."""
        return self.get_output_schema()

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
        async with closing_stream(self.bound.astream(input, self._merge(config))) as stream:
            async for chunk in stream:
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
        async with closing_stream(self.bound.atransform(inputs, self._merge(config))) as stream:
            async for chunk in stream:
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


_COERCIONS: list[tuple[Callable[[Any], bool], Callable[[Any], Runnable[Any, Any]]]] = []


def register_coercion(accepts: Callable[[Any], bool],
                      make: Callable[[Any], Runnable[Any, Any]], *, first: bool = False) -> None:
    """Teach ``coerce_to_runnable`` a kind of object: ``make(thing)`` when ``accepts(thing)``.

    Coercions are tried in the order they were registered (``first=True`` puts this one ahead
    of all others, for objects that would also pass a broader test such as ``callable``); the
    first that accepts wins.
    """
    if first:
        _COERCIONS.insert(0, (accepts, make))
    else:
        _COERCIONS.append((accepts, make))


def coerce_to_runnable(thing: Any) -> Runnable[Any, Any]:
    """A runnable for ``thing``: itself, a dict as ``RunnableParallel``, a function as a lambda.

    A generator function becomes a ``RunnableGenerator`` (it receives the stream of input
    chunks); any other callable, ``operator.itemgetter`` included, a ``RunnableLambda``.

    Raises:
        InvalidInputError: ``thing`` is none of these.
    """
    if isinstance(thing, Runnable):
        return thing
    for accepts, make in _COERCIONS:
        if accepts(thing):
            return make(thing)
    raise InvalidInputError(
        f"expected a Runnable, a callable or a dict, got {type(thing).__name__}"
    )


def step_specs(steps: list[Runnable[Any, Any]]) -> list[ConfigurableFieldSpec]:
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
        # Closing the last step's stream closes the one before it, and so on up the chain.
        async with closing_stream(stream):
            async for chunk in stream:
                yield chunk

    async def astream(self, input: Any, config: RunnableConfig | None = None) -> AsyncIterator[Any]:
        """Async ``stream``."""

        async def one() -> AsyncIterator[Any]:
            yield input

        async with closing_stream(self.atransform(one(), config)) as stream:
            async for chunk in stream:
                yield chunk

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The fields of every step, each once."""
        return step_specs(list(self.steps))

    def children(self) -> list[Runnable[Any, Any]]:
        """The steps."""
        return list(self.steps)
