"""``RunnablePassthrough``: the input unchanged, or with keys added by ``.assign(...)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from chatledger.eventstore import InvalidInputError
from chatledger.runtime._compose import RunnableParallel
from chatledger.runtime._config import ConfigurableFieldSpec, RunnableConfig, ensure_config
from chatledger.runtime._runnable import Input, Runnable
from chatledger.runtime._streams import closing_stream

__all__ = ["RunnableAssign", "RunnablePassthrough"]


class RunnablePassthrough(Runnable[Input, Input]):
    """Returns its input unchanged; ``assign`` builds a step that adds keys to a dict input.

    Args:
        func: Called with each input (for its side effect); its result is ignored.
    """

    def __init__(self, func: Callable[[Any], Any] | None = None) -> None:
        self.func = func

    def __repr__(self) -> str:
        return "RunnablePassthrough()"

    @classmethod
    def assign(cls, **steps: Any) -> RunnableAssign:
        """A step that returns the dict input plus one key per step, each computed from the input.

        Raises:
            InvalidInputError: A step that cannot be coerced to a runnable.
        """
        return RunnableAssign(RunnableParallel(steps))

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """The input itself."""
        if self.func is not None:
            self.func(input)
        return input

    def transform(self, inputs: Iterator[Any], config: RunnableConfig | None = None) -> Iterator[Any]:
        """Pass every chunk through."""
        for chunk in inputs:
            if self.func is not None:
                self.func(chunk)
            yield chunk

    async def atransform(
        self, inputs: AsyncIterator[Any], config: RunnableConfig | None = None
    ) -> AsyncIterator[Any]:
        """Async ``transform``."""
        async with closing_stream(inputs):
            async for chunk in inputs:
                if self.func is not None:
                    self.func(chunk)
                yield chunk


def _check_dict(input: Any) -> Mapping[str, Any]:
    if not isinstance(input, Mapping):
        raise InvalidInputError(
            f"the input to RunnablePassthrough.assign() must be a dict, got {type(input).__name__}"
        )
    return input


class RunnableAssign(Runnable[Any, dict[str, Any]]):
    """The dict input plus the outputs of ``mapper`` (a ``RunnableParallel``) merged in.

    Args:
        mapper: The steps computing the new keys from the input.
    """

    def __init__(self, mapper: RunnableParallel) -> None:
        self.mapper = mapper

    def __repr__(self) -> str:
        return f"RunnablePassthrough.assign({self.mapper!r})"

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """The input with the new keys (new keys win over existing ones).

        Raises:
            InvalidInputError: The input is not a dict.
        """
        given = _check_dict(input)
        return {**given, **self.mapper.invoke(given, ensure_config(config))}

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        """Async ``invoke``."""
        given = _check_dict(input)
        return {**given, **await self.mapper.ainvoke(given, ensure_config(config))}

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The mapper's fields."""
        return self.mapper.config_specs

    def children(self) -> list[Runnable[Any, Any]]:
        """The mapper."""
        return [self.mapper]
