"""``FakeChatModel``: scripted replies for tests, streamed word by word."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from operator import attrgetter
from typing import Any

from chatledger.eventstore import AIMessage, AIMessageChunk, InvalidInputError, Message
from chatledger.projections import approximate_tokens
from chatledger.runtime.models._base import ChatModel

__all__ = ["FakeChatModel", "reply_metadata", "split_words", "word_chunks"]

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Split text into word chunks that join back to exactly ``text``."""
    return _WORDS.findall(text) or [text]


def reply_metadata(
    model_name: str, messages: Sequence[Message], text: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``response_metadata`` and approximate ``usage_metadata`` for a reply to ``messages``.

    About four characters a token plus four a message: counted from the raw text, since a long
    history is passed on every turn and a per-message estimate would cost more than the reply.
    """
    contents = list(map(attrgetter("content"), messages))
    try:  # plain text: counted at C speed
        chars = len("".join(contents))
    except TypeError:  # some content is a list of blocks
        chars = sum(len(m.content) if type(m.content) is str else len(m.text) for m in messages)
    prompt = chars // 4 + 4 * len(messages)
    completion = approximate_tokens(AIMessage(content=text))
    usage = {"input_tokens": prompt, "output_tokens": completion,
             "total_tokens": prompt + completion}
    return {"model_name": model_name, "finish_reason": "stop"}, usage


def word_chunks(reply: AIMessage) -> Iterator[AIMessageChunk]:
    """Stream a reply word by word; metadata rides on the last chunk. The chunks sum to it."""
    if not isinstance(reply.content, str) or reply.tool_calls or not reply.content:
        yield AIMessageChunk(**_fields(reply))
        return
    words = split_words(reply.content)
    for i, word in enumerate(words):
        last = i == len(words) - 1
        yield AIMessageChunk(
            content=word,
            id=reply.id,
            additional_kwargs=reply.additional_kwargs if last else {},
            response_metadata=reply.response_metadata if last else {},
            usage_metadata=reply.usage_metadata if last else None,
            name=reply.name,
        )


class FakeChatModel(ChatModel):
    """Replies with scripted responses in turn, cycling when they run out. For tests.

    A response is a string, an ``AIMessage`` (returned as given, with an id added when it has
    none) or an exception (raised). ``calls`` records the messages of every call, so a test can
    assert what the model saw; it is test instrumentation, never read by the model itself.

    Args:
        responses: The scripted replies.
        model_name: The name recorded in ``RunRecorded.model``.

    Raises:
        InvalidInputError: No responses, or one that is not a string, message or exception.
    """

    def __init__(
        self, responses: Sequence[str | AIMessage | BaseException], *, model_name: str = "fake"
    ) -> None:
        if isinstance(responses, str) or not responses:
            raise InvalidInputError("FakeChatModel needs a non-empty list of responses")
        for i, response in enumerate(responses):
            if not isinstance(response, (str, AIMessage, BaseException)):
                raise InvalidInputError(
                    f"response {i} is a {type(response).__name__}; expected a string, an "
                    "AIMessage or an exception"
                )
        self.responses = tuple(responses)
        self.model_name = model_name
        self.calls: list[list[Message]] = []
        self._next = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeChatModel(responses={list(self.responses)!r})"

    def _take(self, messages: list[Message]) -> AIMessage:
        with self._lock:
            self.calls.append(list(messages))
            response = self.responses[self._next % len(self.responses)]
            self._next += 1
        if isinstance(response, BaseException):
            raise response
        if isinstance(response, AIMessage):
            if response.id is None:
                return AIMessage(**{**_fields(response), "id": f"run-{uuid.uuid4()}"})
            return response
        metadata, usage = reply_metadata(self.model_name, messages, response)
        return AIMessage(content=response, id=f"run-{uuid.uuid4()}",
                         response_metadata=metadata, usage_metadata=usage)

    def _generate(self, messages: list[Message], *, stop: list[str] | None = None) -> AIMessage:
        return self._take(messages)

    def _stream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        yield from word_chunks(self._take(messages))

    async def _agenerate(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AIMessage:
        return self._take(messages)

    async def _astream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        for chunk in word_chunks(self._take(messages)):
            yield chunk

def _fields(message: AIMessage) -> dict[str, Any]:
    return {
        "content": message.content,
        "additional_kwargs": message.additional_kwargs,
        "response_metadata": message.response_metadata,
        "name": message.name,
        "id": message.id,
        "tool_calls": message.tool_calls,
        "invalid_tool_calls": message.invalid_tool_calls,
        "usage_metadata": message.usage_metadata,
    }
