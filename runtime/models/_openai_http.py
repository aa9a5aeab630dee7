"""The HTTP side of OpenAI-compatible servers: one httpx client per mode, retries, error mapping.

Requests that fail with 429, 5xx or a connection error are retried with a small jittered
exponential backoff (``Retry-After``/``retry-after-ms`` are honoured, capped). Timeouts, other
statuses and broken replies are not retried: the server may already have done the work. A
stream is retried only until its first byte arrives. The API key lives in a ``Secret`` and is
masked out of everything a server sends back before it reaches an error or a log.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

from chatledger.eventstore import redact_url
from chatledger.eventstore._log import get_logger, logging_enabled
from chatledger.runtime.models._errors import (
    ModelConnectionError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    http_error,
)
from chatledger.runtime.models._openai_wire import SSEDecoder

__all__ = ["Secret", "Transport", "retry_delay"]

log = get_logger("chatledger.models.openai")

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0
PATH = "/chat/completions"
_decoder = msgspec.json.Decoder()


class Secret:
    """A string that never shows itself in a repr, a str or a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        """The secret itself, for the Authorization header only."""
        return self._value

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret(None)"

    __str__ = __repr__


def retry_delay(attempt: int, headers: Mapping[str, str] | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    The server's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) wins, capped at
    ``MAX_RETRY_AFTER``; otherwise 0.5 s doubling per attempt up to 8 s, less up to 25 % jitter.
    """
    if headers is not None:
        hinted = _retry_after(headers)
        if hinted is not None:
            return min(max(hinted, 0.0), MAX_RETRY_AFTER)
    base: float = min(INITIAL_BACKOFF * 2.0**attempt, MAX_BACKOFF)
    return base * (1 - 0.25 * random.random())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def _error_detail(body: bytes) -> str:
    """The human part of an error body: OpenAI's ``error.message``, Ollama's ``error``, or text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    return text if len(text) <= 500 else text[:500] + "..."


class Transport:
    """POSTs to ``{base_url}/chat/completions`` with retries; sync and async clients, reused.

    Each client is created on first use. The async client belongs to the event loop that made
    it; a call from another loop (a second ``asyncio.run``) gets a fresh one.
    """

    def __init__(
        self, *, base_url: str, api_key: Secret, timeout: float | None, max_retries: int
    ) -> None:
        self.url = base_url.rstrip("/") + PATH
        self.server = redact_url(base_url.rstrip("/"))
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    # -- clients ---------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "chatledger"}
        key = self.api_key.get()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def client(self) -> httpx.Client:
        """The sync client, created on first use."""
        with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers())
            return self._client

    def aclient(self) -> httpx.AsyncClient:
        """The async client of the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            owner = self._aclient_loop() if self._aclient_loop is not None else None
            if self._aclient is None or self._aclient.is_closed or owner is not loop:
                self._aclient = httpx.AsyncClient(timeout=self.timeout, headers=self._headers())
                self._aclient_loop = weakref.ref(loop)
            return self._aclient

    def close(self) -> None:
        """Close the sync client (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client if it belongs to the running loop, and the sync client."""
        with self._lock:
            client, self._aclient = self._aclient, None
            owner = self._aclient_loop() if self._aclient_loop is not None else None
            self._aclient_loop = None
        if client is not None and owner is asyncio.get_running_loop():
            await client.aclose()
        self.close()

    # -- error mapping ---------------------------------------------------------------------
    def _transport_error(self, e: httpx.TransportError) -> tuple[ModelError, bool]:
        """The error for a failed connection or request, and whether it may be retried."""
        if isinstance(e, httpx.ConnectTimeout):
            return ModelConnectionError(
                f"{self.server}: cannot connect within {self.timeout}s", base_url=self.server
            ), True
        if isinstance(e, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{self.server}: no answer from POST {PATH} within {self.timeout}s",
                base_url=self.server,
            ), False
        reason = self.api_key.mask(str(e)) or type(e).__name__
        return ModelConnectionError(
            f"{self.server}: cannot reach the model server ({reason})", base_url=self.server
        ), True

    def _status_error(self, response: httpx.Response, body: bytes) -> tuple[ModelError, bool]:
        status = response.status_code
        detail = self.api_key.mask(_error_detail(body))
        message = f"{self.server}: HTTP {status} {response.reason_phrase} from POST {PATH}"
        if detail:
            message += f": {detail}"
        if status in (401, 403) and self.api_key.get() is None:
            message += " (no API key was given: pass api_key= or set OPENAI_API_KEY)"
        elif status == 404:
            message += " (check that base_url ends in /v1 and that the server has this model)"
        elif status < 400:
            where = redact_url(response.headers.get("location", "elsewhere"))
            message += f" (redirected to {where}: use that address as base_url)"
        error = http_error(message, base_url=self.server, status=status, body=detail)
        return error, status == 429 or status >= 500

    def _retry_or_raise(
        self, error: ModelError, retryable: bool, attempt: int, cause: BaseException | None,
        headers: Mapping[str, str] | None = None,
    ) -> float:
        """The delay before the next attempt, or raise ``error`` when there is none."""
        if not retryable or attempt >= self.max_retries:
            if retryable and attempt:
                error.args = (f"{error.args[0]} (gave up after {attempt + 1} attempts)",)
            raise error from cause
        delay = retry_delay(attempt, headers)
        if logging_enabled():
            status = getattr(error, "status", None)
            log.warning("model_request_retry", base_url=self.server, attempt=attempt + 1,
                        delay_s=round(delay, 3), error=type(error).__name__,
                        **({"status": status} if status is not None else {}))
        return delay

    def _decode(self, raw: bytes, status: int) -> Any:
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError as e:
            preview = self.api_key.mask(raw[:200].decode("utf-8", "replace"))
            raise ModelResponseError(
                f"{self.server}: HTTP {status} reply to POST {PATH} is not valid JSON ({e}): "
                f"{preview!r}", base_url=self.server,
            ) from e

    def _cut(self, e: httpx.TransportError, what: str) -> ModelError:
        if isinstance(e, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{self.server}: the {what} stalled for more than {self.timeout}s",
                base_url=self.server,
            )
        return ModelResponseError(
            f"{self.server}: the {what} was cut off mid-way ({self.api_key.mask(str(e))})",
            base_url=self.server,
        )

    # -- sync ------------------------------------------------------------------------------
    def _send(self, content: bytes, *, stream: bool) -> httpx.Response:
        client = self.client()
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        attempt = 0
        while True:
            cause: BaseException | None = None
            hints: Mapping[str, str] | None = None
            try:
                request = client.build_request("POST", self.url, content=content, headers=headers)
                response = client.send(request, stream=True)
            except httpx.TransportError as e:
                cause = e
                error, retryable = self._transport_error(e)
            else:
                if response.status_code < 300:
                    return response
                try:
                    body = response.read()
                except httpx.TransportError:
                    body = b""
                finally:
                    response.close()
                error, retryable = self._status_error(response, body)
                hints = response.headers
            time.sleep(self._retry_or_raise(error, retryable, attempt, cause, hints))
            attempt += 1

    def post(self, body: dict[str, Any]) -> Any:
        """POST a request and return its decoded JSON reply.

        Raises:
            ModelConnectionError: The server cannot be reached (after retries).
            ModelTimeoutError: No answer within the timeout.
            ModelHTTPError: An error status (429 and 5xx after retries).
            ModelResponseError: The reply is cut off or not JSON.
        """
        response = self._send(msgspec.json.encode(body), stream=False)
        try:
            raw = response.read()
        except httpx.TransportError as e:
            raise self._cut(e, "reply") from e
        finally:
            response.close()
        return self._decode(raw, response.status_code)

    def stream(self, body: dict[str, Any]) -> Iterator[str]:
        """POST a streaming request and yield the ``data`` of each server-sent event.

        Raises:
            ModelConnectionError: The server cannot be reached (after retries).
            ModelTimeoutError: No answer, or a stall mid-stream, beyond the timeout.
            ModelHTTPError: An error status (429 and 5xx after retries).
            ModelResponseError: The stream is cut off mid-way.
        """
        response = self._send(msgspec.json.encode(body), stream=True)
        decoder = SSEDecoder()
        try:
            for line in response.iter_lines():
                data = decoder.feed(line)
                if data is not None:
                    yield data
        except httpx.TransportError as e:
            raise self._cut(e, "stream") from e
        finally:
            response.close()
        data = decoder.flush()
        if data is not None:
            yield data

    # -- async -----------------------------------------------------------------------------
    async def _asend(self, content: bytes, *, stream: bool) -> httpx.Response:
        client = self.aclient()
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        attempt = 0
        while True:
            cause: BaseException | None = None
            hints: Mapping[str, str] | None = None
            try:
                request = client.build_request("POST", self.url, content=content, headers=headers)
                response = await client.send(request, stream=True)
            except httpx.TransportError as e:
                cause = e
                error, retryable = self._transport_error(e)
            else:
                if response.status_code < 300:
                    return response
                try:
                    body = await response.aread()
                except httpx.TransportError:
                    body = b""
                finally:
                    await response.aclose()
                error, retryable = self._status_error(response, body)
                hints = response.headers
            await asyncio.sleep(self._retry_or_raise(error, retryable, attempt, cause, hints))
            attempt += 1

    async def apost(self, body: dict[str, Any]) -> Any:
        """Async ``post``."""
        response = await self._asend(msgspec.json.encode(body), stream=False)
        try:
            raw = await response.aread()
        except httpx.TransportError as e:
            raise self._cut(e, "reply") from e
        finally:
            await response.aclose()
        return self._decode(raw, response.status_code)

    async def astream(self, body: dict[str, Any]) -> AsyncIterator[str]:
        """Async ``stream``."""
        response = await self._asend(msgspec.json.encode(body), stream=True)
        decoder = SSEDecoder()
        try:
            async for line in response.aiter_lines():
                data = decoder.feed(line)
                if data is not None:
                    yield data
        except httpx.TransportError as e:
            raise self._cut(e, "stream") from e
        finally:
            await response.aclose()
        data = decoder.flush()
        if data is not None:
            yield data
