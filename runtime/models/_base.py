"""``ChatModel``: the base of chat models. Subclasses implement ``_generate``.

``invoke``/``ainvoke``/``stream``/``astream`` accept a string, a message, a list of messages or
``(role, text)`` pairs, or a prompt value with ``to_messages()``, and turn it into messages with
``coerce_messages`` before calling the subclass.

Each call is reported to the turn's ``CallRecorder`` when one is set (``runtime._recording``):
the exact messages the model received, its parameters, the reply, latency and any error.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any

from chatledger.eventstore import AIMessage, AIMessageChunk, Message
from chatledger.runtime._config import RunnableConfig
from chatledger.runtime._messages import coerce_messages
from chatledger.runtime._recording import CallRecorder, ModelCall, current_recorder
from chatledger.runtime._runnable import Runnable
from chatledger.runtime._streams import aggregate, closing_stream

__all__ = ["ChatModel"]

class ChatModel(Runnable[Any, AIMessage]):
    """Base of chat models. Subclasses implement ``_generate`` (and optionally the others).

    Attributes:
        model_name: The model's name, recorded in ``RunRecorded.model`` and ``ModelCalled``.
        provider: Who serves the model, recorded in ``ModelCalled.provider`` (OpenTelemetry's
            ``gen_ai.provider.name``).
    """

    model_name: str = "chat-model"
    provider: str = "chatledger"

    def parameters(self, stop: list[str] | None) -> dict[str, Any]:
        """The request parameters a call with ``stop`` uses, as recorded in ``ModelCalled``."""
        return {"stop": list(stop)} if stop else {}

    def with_parameters(self, parameters: dict[str, Any]) -> ChatModel:
        """This model set to send recorded ``parameters`` (replay re-sends a request with them).

        The base knows only ``stop``, which goes with each call, so it returns itself.
        """
        return self

    def _report(self, recorder: CallRecorder, messages: list[Message], stop: list[str] | None,
                reply: Message | None, started: float, *, stream: bool,
                error: BaseException | None = None, cancelled: bool = False) -> None:
        if cancelled:
            problem: str | None = "cancelled"
        elif error is not None:
            text = str(error)
            problem = f"{type(error).__name__}: {text}" if text else type(error).__name__
        else:
            problem = None
        if isinstance(reply, AIMessageChunk):
            reply = reply.to_message()
        recorder.add(ModelCall(
            provider=self.provider, model=self.model_name, parameters=self.parameters(stop),
            request=messages, response=reply, stream=stream, started=started,
            latency_ms=(time.perf_counter() - started) * 1000.0, error=problem))

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
        messages = coerce_messages(input)
        recorder = current_recorder()
        if recorder is None:
            return self._generate(messages, stop=stop)
        started = time.perf_counter()
        try:
            reply = self._generate(messages, stop=stop)
        except BaseException as e:
            self._report(recorder, messages, stop, None, started, stream=False, error=e)
            raise
        self._report(recorder, messages, stop, reply, started, stream=False)
        return reply

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> AIMessage:
        """Async ``invoke``."""
        messages = coerce_messages(input)
        recorder = current_recorder()
        if recorder is None:
            return await self._agenerate(messages, stop=stop)
        started = time.perf_counter()
        try:
            reply = await self._agenerate(messages, stop=stop)
        except asyncio.CancelledError:
            self._report(recorder, messages, stop, None, started, stream=False, cancelled=True)
            raise
        except BaseException as e:
            self._report(recorder, messages, stop, None, started, stream=False, error=e)
            raise
        self._report(recorder, messages, stop, reply, started, stream=False)
        return reply

    def stream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        """Yield the reply as ``AIMessageChunk`` pieces that add up to the whole reply."""
        messages = coerce_messages(input)
        recorder = current_recorder()
        if recorder is None:
            yield from self._stream(messages, stop=stop)
            return
        started = time.perf_counter()
        chunks: list[AIMessageChunk] = []
        try:
            for chunk in self._stream(messages, stop=stop):
                chunks.append(chunk)
                yield chunk
        except GeneratorExit:
            self._report(recorder, messages, stop, aggregate(chunks), started, stream=True,
                         cancelled=True)
            raise
        except BaseException as e:
            self._report(recorder, messages, stop, aggregate(chunks), started, stream=True,
                         error=e)
            raise
        self._report(recorder, messages, stop, aggregate(chunks), started, stream=True)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """Async ``stream``."""
        messages = coerce_messages(input)
        recorder = current_recorder()
        if recorder is None:
            async with closing_stream(self._astream(messages, stop=stop)) as stream:
                async for chunk in stream:
                    yield chunk
            return
        started = time.perf_counter()
        chunks: list[AIMessageChunk] = []
        try:
            async with closing_stream(self._astream(messages, stop=stop)) as stream:
                async for chunk in stream:
                    chunks.append(chunk)
                    yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            self._report(recorder, messages, stop, aggregate(chunks), started, stream=True,
                         cancelled=True)
            raise
        except BaseException as e:
            self._report(recorder, messages, stop, aggregate(chunks), started, stream=True,
                         error=e)
            raise
        self._report(recorder, messages, stop, aggregate(chunks), started, stream=True)

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
