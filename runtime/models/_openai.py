"""``OpenAIChatModel``: any server that speaks OpenAI Chat Completions, over httpx.

The same class talks to vLLM (``http://localhost:8000/v1``), Ollama
(``http://localhost:11434/v1``), llama.cpp's server (``http://localhost:8080/v1``) and OpenAI.
The wire format lives in ``_openai_wire``, the HTTP side (clients, retries, errors) in
``_openai_http``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from chatledger.eventstore import AIMessage, AIMessageChunk, InvalidInputError, Message, redact_url
from chatledger.runtime._streams import closing_stream
from chatledger.runtime.models._base import ChatModel
from chatledger.runtime.models._openai_http import Secret, Transport
from chatledger.runtime.models._openai_wire import (
    StreamAssembler,
    message_from_completion,
    request_body,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIChatModel"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _valid_url(url: object) -> bool:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    try:
        return bool(httpx.URL(url).host)
    except httpx.InvalidURL:
        return False


class OpenAIChatModel(ChatModel):
    """A chat model served over the OpenAI Chat Completions protocol.

    Replies carry ``tool_calls``, ``usage_metadata`` (input/output/total tokens),
    ``response_metadata`` (``model_name``, ``finish_reason``) and the server's reply id.
    ``stream`` yields ``AIMessageChunk`` pieces as they arrive; tool-call arguments come as
    ``tool_call_chunks`` fragments, and the chunks add up (``+``, then ``to_message()``) to the
    whole reply. One httpx client per mode (sync, async) is created on first use and reused;
    ``close()``/``aclose()`` (or ``with``/``async with``) release them.

    Requests failing with 429, 5xx or a connection error are retried ``max_retries`` times with
    a small jittered exponential backoff that honours ``Retry-After``. The API key never
    appears in a repr, an error, a log line or a recorded event.

    Args:
        model: The model name the server knows, e.g. ``"gpt-4o-mini"``, ``"llama3.2"``.
        base_url: The server's API root, ending in ``/v1``. Default ``$OPENAI_BASE_URL``, else
            ``https://api.openai.com/v1``.
        api_key: Sent as ``Authorization: Bearer ...``. Default ``$OPENAI_API_KEY``; local
            servers usually need none.
        timeout: Seconds to wait to connect, and for each read (None waits forever).
        max_retries: Retries after the first attempt (0 disables them).
        temperature: Sampling temperature; None leaves the server's default.
        max_tokens: The longest reply; None leaves the server's default.
        stop: Stop sequences, used when a call passes none.
        extra_body: More request fields, merged last (``tools``, ``top_p``, ...).

    Raises:
        InvalidInputError: An option has the wrong type or range.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 2,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidInputError("OpenAIChatModel needs a model name (a non-empty string)")
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not _valid_url(url):
            raise InvalidInputError(
                "OpenAIChatModel base_url must be an http:// or https:// URL with a host, "
                f"got {redact_url(str(url))!r}"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise InvalidInputError(f"timeout must be a positive number or None, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(
                f"max_retries must be a non-negative int, got {max_retries!r}"
            )
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0
        ):
            raise InvalidInputError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
        if isinstance(stop, str):
            stop = [stop]
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.model_name = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stop = list(stop) if stop else None
        self.extra_body = dict(extra_body) if extra_body else None
        self._transport = Transport(base_url=url, api_key=Secret(key), timeout=timeout,
                                    max_retries=max_retries)

    @property
    def base_url(self) -> str:
        """The server's API root (any password in it masked)."""
        return self._transport.server

    @property
    def timeout(self) -> float | None:
        """Seconds to wait to connect and for each read."""
        return self._transport.timeout

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt."""
        return self._transport.max_retries

    provider = "openai"

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model_name!r}, base_url={self.base_url!r})"

    def parameters(self, stop: list[str] | None) -> dict[str, Any]:
        """The request's parameters: temperature, max_tokens, stop and every ``extra_body``
        field (tools, tool_choice, response_format, ...), as recorded in ``ModelCalled``."""
        body = request_body(self.model_name, [], stream=False, temperature=self.temperature,
                            max_tokens=self.max_tokens,
                            stop=stop if stop is not None else self.stop,
                            extra_body=self.extra_body, check=False)
        body.pop("model", None)
        body.pop("messages", None)
        return body

    def _body(self, messages: list[Message], stop: list[str] | None, *, stream: bool
              ) -> dict[str, Any]:
        return request_body(
            self.model_name, messages, stream=stream, temperature=self.temperature,
            max_tokens=self.max_tokens, stop=stop if stop is not None else self.stop,
            extra_body=self.extra_body,
        )

    def with_parameters(self, parameters: dict[str, Any]) -> OpenAIChatModel:
        """A copy (sharing the HTTP clients) that sends exactly ``parameters``: temperature,
        max_tokens and stop, every other field as ``extra_body``."""
        rest = dict(parameters)
        clone = copy.copy(self)
        clone.temperature = rest.pop("temperature", None)
        clone.max_tokens = rest.pop("max_tokens", None)
        stop = rest.pop("stop", None)
        clone.stop = list(stop) if stop else None
        rest.pop("stream", None)
        rest.pop("stream_options", None)
        clone.extra_body = rest or None
        return clone

    # -- the ChatModel hooks ---------------------------------------------------------------
    def _generate(self, messages: list[Message], *, stop: list[str] | None = None) -> AIMessage:
        """One request, one reply.

        Raises:
            InvalidInputError: No messages, or one with no OpenAI role.
            ModelError: The call failed (see ``runtime.models._errors`` for the kinds).
        """
        data = self._transport.post(self._body(messages, stop, stream=False))
        return message_from_completion(data, base_url=self.base_url)

    def _stream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        """The reply as chunks, as the server sends them.

        Raises:
            InvalidInputError: No messages, or one with no OpenAI role.
            ModelError: The call failed or the stream broke off.
        """
        assembler = StreamAssembler(base_url=self.base_url)
        for data in self._transport.stream(self._body(messages, stop, stream=True)):
            chunk = assembler.feed(data)
            if chunk is not None:
                yield chunk
        last = assembler.end()
        if last is not None:
            yield last

    async def _agenerate(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AIMessage:
        """Async ``_generate``, on the async client: it never blocks the event loop."""
        data = await self._transport.apost(self._body(messages, stop, stream=False))
        return message_from_completion(data, base_url=self.base_url)

    async def _astream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        """Async ``_stream``, on the async client."""
        assembler = StreamAssembler(base_url=self.base_url)
        body = self._body(messages, stop, stream=True)
        # Closed at once when the reply is abandoned, so the HTTP response is released.
        async with closing_stream(self._transport.astream(body)) as stream:
            async for data in stream:
                chunk = assembler.feed(data)
                if chunk is not None:
                    yield chunk
        last = assembler.end()
        if last is not None:
            yield last

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync HTTP client; a later call opens a new one."""
        self._transport.close()

    async def aclose(self) -> None:
        """Close the HTTP clients; a later call opens new ones."""
        await self._transport.aclose()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> OpenAIChatModel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
