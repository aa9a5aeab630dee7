"""The OpenAI Chat Completions wire format: request bodies, replies, stream chunks, SSE.

Pure functions, no I/O: the transport (``_openai_http``) moves bytes, this module gives them
meaning. Replies become ``AIMessage``; stream chunks become ``AIMessageChunk`` whose tool-call
argument fragments travel as ``tool_call_chunks``, so that summing the chunks and calling
``to_message()`` reassembles the tool calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from chatledger.eventstore import AIMessage, AIMessageChunk, InvalidInputError, Message, to_openai
from chatledger.eventstore._messages import openai_tool_calls
from chatledger.runtime.models._errors import ModelResponseError

__all__ = [
    "SSEDecoder",
    "StreamAssembler",
    "chunk_from_event",
    "message_from_completion",
    "openai_message",
    "request_body",
    "usage_metadata",
]


def openai_message(message: Message) -> dict[str, Any]:
    """The Chat Completions form of one message (``to_openai``), with bare strings in content
    lists as text parts.

    An assistant message read from a completion carries every field the server returned
    beyond role and content in ``additional_kwargs`` (reasoning, thinking signatures,
    encrypted reasoning, refusal, annotations, the raw tool calls, unknown ones too);
    ``to_openai`` sends them back unchanged and in the server's order, so providers that
    require them back get them byte for byte.

    Raises:
        InvalidInputError: The message has no OpenAI role.
    """
    out = to_openai(message)
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = [
            {"type": "text", "text": part} if isinstance(part, str) else part for part in content
        ]
    return out


def request_body(
    model: str,
    messages: Sequence[Message],
    *,
    stream: bool,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """The JSON body of a ``POST /chat/completions`` request (``check=False``: allow no messages).

    ``extra_body`` is merged last, so it can add any server-specific field (``tools``,
    ``top_p``, vLLM's ``guided_json``, ...) or override one of ours.

    Raises:
        InvalidInputError: No messages, or a message with no OpenAI role.
    """
    if check and not messages:
        raise InvalidInputError("a chat model call needs at least one message")
    body: dict[str, Any] = {"model": model, "messages": [openai_message(m) for m in messages]}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stop:
        body["stop"] = list(stop)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if extra_body:
        body.update(extra_body)
    return body


def usage_metadata(usage: Any) -> dict[str, Any] | None:
    """OpenAI's ``usage`` as ``{input_tokens, output_tokens, total_tokens, ...details}``."""
    if not isinstance(usage, Mapping):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens")) or prompt + completion
    out: dict[str, Any] = {
        "input_tokens": prompt, "output_tokens": completion, "total_tokens": total,
    }
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping):
        details = {"cache_read": _int(prompt_details.get("cached_tokens")),
                   "audio": _int(prompt_details.get("audio_tokens"))}
        details = {k: v for k, v in details.items() if v}
        if details:
            out["input_token_details"] = details
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, Mapping):
        details = {"reasoning": _int(completion_details.get("reasoning_tokens")),
                   "audio": _int(completion_details.get("audio_tokens"))}
        details = {k: v for k, v in details.items() if v}
        if details:
            out["output_token_details"] = details
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _check_error(data: Any, base_url: str, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ModelResponseError(
            f"{base_url}: {what} is not a JSON object: {_preview(data)}", base_url=base_url
        )
    error = data.get("error")
    if error:
        detail = error.get("message", error) if isinstance(error, Mapping) else error
        raise ModelResponseError(
            f"{base_url}: the server reported an error in its {what}: {_preview(detail)}",
            base_url=base_url,
        )
    return data


def _preview(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _metadata(data: Mapping[str, Any], finish_reason: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data.get("model"), str):
        out["model_name"] = data["model"]
    if finish_reason is not None:
        out["finish_reason"] = finish_reason
    if isinstance(data.get("system_fingerprint"), str):
        out["system_fingerprint"] = data["system_fingerprint"]
    return out


def message_from_completion(data: Any, *, base_url: str) -> AIMessage:
    """The ``AIMessage`` of a non-streamed Chat Completions reply.

    Invalid tool-call arguments become ``invalid_tool_calls`` rather than an error, as in
    LangChain, so the caller can show the model its mistake.

    Raises:
        ModelResponseError: The reply is not a completion, or reports an error.
    """
    body = _check_error(data, base_url, "reply")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise ModelResponseError(
            f"{base_url}: the reply has no choices: {_preview(dict(body))}", base_url=base_url
        )
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise ModelResponseError(
            f"{base_url}: the reply's first choice has no message: {_preview(dict(choice))}",
            base_url=base_url,
        )
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise ModelResponseError(
            f"{base_url}: the reply's content is a {type(content).__name__}", base_url=base_url
        )
    calls, invalid = openai_tool_calls(message.get("tool_calls"))
    # Every field beyond role and content, unknown ones included, as the server sent it:
    # ``openai_message`` sends them back unchanged on later requests.
    extra = {k: v for k, v in message.items() if k not in ("role", "content")}
    reply_id = body.get("id")
    return AIMessage(
        content=content or "",
        additional_kwargs=extra,
        response_metadata=_metadata(body, choice.get("finish_reason")),
        id=reply_id if isinstance(reply_id, str) else None,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(body.get("usage")),
    )


def chunk_from_event(data: Any, *, base_url: str) -> tuple[AIMessageChunk, dict[str, Any] | None]:
    """One streamed event as an ``AIMessageChunk`` without usage, and the usage it reported.

    Usage is returned apart because some servers repeat a running total in every chunk; the
    caller attaches the last one to the final chunk so that adding chunks counts it once.

    Raises:
        ModelResponseError: The event is not a completion chunk, or reports an error.
    """
    body = _check_error(data, base_url, "stream")
    choices = body.get("choices") or []
    choice = choices[0] if isinstance(choices, list) and choices else {}
    if not isinstance(choice, Mapping):
        raise ModelResponseError(f"{base_url}: a stream chunk's choice is not an object",
                                 base_url=base_url)
    delta = choice.get("delta") or {}
    if not isinstance(delta, Mapping):
        raise ModelResponseError(f"{base_url}: a stream chunk's delta is not an object",
                                 base_url=base_url)
    content = delta.get("content")
    fragments = []
    for call in delta.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or {}
        fragments.append({
            "name": function.get("name"),
            "args": function.get("arguments"),
            "id": call.get("id"),
            "index": call.get("index", 0),
            "type": "tool_call_chunk",
        })
    chunk_id = body.get("id")
    chunk = AIMessageChunk(
        content=content if isinstance(content, (str, list)) else "",
        response_metadata=_metadata(body, choice.get("finish_reason")),
        id=chunk_id if isinstance(chunk_id, str) and chunk_id else None,
        tool_call_chunks=fragments,
    )
    return chunk, usage_metadata(body.get("usage"))


class SSEDecoder:
    """Server-sent events, one line at a time: gives the ``data`` of each complete event.

    Lines are fed without their line ending. ``data:`` lines of one event are joined with
    newlines and the event ends at a blank line; comments (``:``) and other fields are ignored.
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Take one line; return the event's data when the line completes an event."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The data of an event the stream ended without a blank line for, if any."""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data


class StreamAssembler:
    """Turns the ``data`` of each streamed event into chunks, and checks the stream finished.

    The last usage any event reported is held back and sent on one final chunk, so a server that
    repeats running totals is counted once when the chunks are added up.
    """

    __slots__ = ("_base_url", "_done", "_extras", "_finished", "_id", "_meta", "_usage")

    def __init__(self, *, base_url: str) -> None:
        self._base_url = base_url
        self._done = False
        self._finished = False
        self._id: str | None = None
        self._usage: dict[str, Any] | None = None
        self._meta: dict[str, Any] = {}
        self._extras: dict[str, Any] = {}

    def feed(self, data: str) -> AIMessageChunk | None:
        """The chunk for one event's data, or None for ``[DONE]`` and empty keep-alives.

        Raises:
            ModelResponseError: The data is not JSON, or not a completion chunk.
        """
        if data.strip() == "[DONE]":
            self._done = True
            return None
        if self._done or not data.strip():
            return None
        try:
            event = json.loads(data)
        except ValueError as e:
            raise ModelResponseError(
                f"{self._base_url}: a stream event is not valid JSON ({e}): {_preview(data)!r}",
                base_url=self._base_url,
            ) from e
        chunk, usage = chunk_from_event(event, base_url=self._base_url)
        if usage is not None:
            self._usage = usage
        self._gather_extras(event)
        if chunk.response_metadata.get("finish_reason") is not None:
            self._finished = True
        # Servers repeat model and fingerprint in every event; pass each on once.
        fresh = {k: v for k, v in chunk.response_metadata.items() if self._meta.get(k) != v}
        self._meta.update(fresh)
        chunk.response_metadata = fresh
        self._id = self._id or chunk.id
        if chunk.content or chunk.tool_call_chunks or chunk.response_metadata:
            return chunk
        return None

    def _gather_extras(self, event: Any) -> None:
        """Delta fields beyond role, content and tool calls (reasoning text, signatures, ...):
        text fragments are joined, other values replaced; nulls are skipped."""
        choices = event.get("choices") if isinstance(event, Mapping) else None
        delta = choices[0].get("delta") if isinstance(choices, list) and choices and \
            isinstance(choices[0], Mapping) else None
        if not isinstance(delta, Mapping):
            return
        for name, value in delta.items():
            if name in ("role", "content", "tool_calls") or value is None:
                continue
            before = self._extras.get(name)
            self._extras[name] = (before + value if isinstance(before, str)
                                  and isinstance(value, str) else value)

    def end(self) -> AIMessageChunk | None:
        """The closing chunk: the usage, if the server reported any, and the other delta fields
        gathered whole (``additional_kwargs``), so the chunks add up to them once.

        Raises:
            ModelResponseError: The stream ended before ``[DONE]`` and before any
                ``finish_reason``: it was cut off mid-way.
        """
        if not (self._done or self._finished):
            raise ModelResponseError(
                f"{self._base_url}: the stream ended before the reply was complete "
                "(no finish_reason and no [DONE]): it was cut off mid-way",
                base_url=self._base_url,
            )
        if self._usage is None and not self._extras:
            return None
        return AIMessageChunk(content="", id=self._id, usage_metadata=self._usage,
                              additional_kwargs=dict(self._extras))
