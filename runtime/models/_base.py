"""``ChatModel``: the base of chat models. Subclasses implement ``_generate``.

``invoke``/``ainvoke``/``stream``/``astream`` accept a string, a message, a list of messages or
``(role, text)`` pairs, or a prompt value with ``to_messages()``, and turn it into messages with
``coerce_messages`` before calling the subclass.
"""

from __future__ import annotations

import asyncio
import contextvars
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any

from chatledger.eventstore import AIMessage, AIMessageChunk, Message
from chatledger.runtime._config import RunnableConfig
from chatledger.runtime._messages import coerce_messages
from chatledger.runtime._runnable import Runnable

__all__ = ["ChatModel"]

class ChatModel(Runnable[Any, AIMessage]):
    """Base of chat models. Subclasses implement ``_generate`` (and optionally the others).

    Attributes:
        model_name: The model's name, recorded in ``RunRecorded.model``.
    """

    model_name: str = "chat-model"

    @abstractmethod
    def _generate(self, messages: list[Message], *, stop: list[str] | None = None) -> AIMessage:
        """Reply to ``messages``."""

    def _stream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        """Reply in chunks; by default the whole ``_generate`` reply as one chunk."""
        yield _as_chunk(self._generate(messages, stop=stop))

    async def _agenerate(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AIMessage:
        """Async ``_generate``; by default ``_generate`` in a worker thread."""
        context = contextvars.copy_context()
        return await asyncio.to_thread(context.run, self._generate, messages, stop=stop)

    async def _astream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """Async ``_stream``; by default the whole ``_agenerate`` reply as one chunk."""
        yield _as_chunk(await self._agenerate(messages, stop=stop))

    # -- the Runnable surface --------------------------------------------------------------
    def invoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> AIMessage:
        """Reply to the input (see ``coerce_messages`` for what it may be).

        Raises:
            InvalidInputError: The input cannot be read as messages.
        """
        return self._generate(coerce_messages(input), stop=stop)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> AIMessage:
        """Async ``invoke``."""
        return await self._agenerate(coerce_messages(input), stop=stop)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        """Yield the reply as ``AIMessageChunk`` pieces that add up to the whole reply."""
        yield from self._stream(coerce_messages(input), stop=stop)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """Async ``stream``."""
        async for chunk in self._astream(coerce_messages(input), stop=stop):
            yield chunk

    def get_name(self) -> str:
        """The runnable's name, else the model's class name."""
        return self.name or type(self).__name__


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    if isinstance(message, AIMessageChunk):
        return message
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        name=message.name,
        id=message.id,
        tool_calls=message.tool_calls,
        invalid_tool_calls=message.invalid_tool_calls,
        usage_metadata=message.usage_metadata,
    )
