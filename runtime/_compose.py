"""``RunnableParallel``: a dict of runnables run on the same input (a dict in a chain is one)."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chatledger.runtime._config import (
    ConfigurableFieldSpec,
    RunnableConfig,
    child_config,
    ensure_config,
)
from chatledger.runtime._runnable import (
    Runnable,
    coerce_to_runnable,
    register_coercion,
    step_specs,
)
from chatledger.runtime._streams import closing_stream

__all__ = ["RunnableParallel"]


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
                async with closing_stream(step.astream(input, inner)) as stream:
                    async for chunk in stream:
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
        return step_specs(list(self.steps.values()))

    def children(self) -> list[Runnable[Any, Any]]:
        """The steps."""
        return list(self.steps.values())


register_coercion(lambda thing: isinstance(thing, Mapping),
                  lambda thing: RunnableParallel(dict(thing)))
