"""``OfflineChatModel``: a deterministic, rule-based model that needs no network.

It answers from the messages it is given and nothing else, which makes it a faithful witness
for memory: it can say the user's name only when an introduction is in the history it receives.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

from chatledger.eventstore import AIMessage, AIMessageChunk, HumanMessage, Message, SystemMessage
from chatledger.runtime.models._base import ChatModel
from chatledger.runtime.models._fake import reply_metadata, word_chunks

__all__ = ["OfflineChatModel"]

_GREETING_INTRO = re.compile(
    r"^\s*(?:(?:hi|hello|hey|ciao)\b[\s,!.\-]*)?(?:i['\u2019]?m|i am)\s+([^\W\d_][\w'-]*)[\s!.]*$",
    re.IGNORECASE,
)
_MY_NAME_IS = re.compile(r"\bmy name is\s+([^\W\d_][\w'-]*)", re.IGNORECASE)
_NAME_QUESTION = re.compile(r"\bwhat(?:['\u2019]?s| is)\s+my name\b", re.IGNORECASE)

_REPLIES = {
    "en": {
        "intro": "Nice to meet you, {name}!",
        "known": "Your name is {name}.",
        "unknown": "I'm sorry, I don't know your name.",
        "echo": "You said: {text}",
    },
    "it": {
        "intro": "Ciao {name}! È un piacere conoscerti.",
        "known": "Il tuo nome è {name}.",
        "unknown": "Mi dispiace, non so il tuo nome.",
        "echo": "Hai detto: {text}",
    },
}


def _introduced_name(text: str) -> str | None:
    match = _MY_NAME_IS.search(text) or _GREETING_INTRO.match(text)
    return match.group(1).capitalize() if match else None


class OfflineChatModel(ChatModel):
    """Answers introductions and "what's my name?" from the history alone; echoes the rest.

    It speaks Italian when a system message says the assistant speaks Italian, English
    otherwise. Replies carry ``response_metadata`` (model name, finish reason), approximate
    ``usage_metadata`` and an id ``run-<uuid>``.

    Args:
        model_name: The name recorded in ``RunRecorded.model``.
    """

    def __init__(self, *, model_name: str = "offline") -> None:
        self.model_name = model_name

    def __repr__(self) -> str:
        return f"OfflineChatModel(model_name={self.model_name!r})"

    def reply_text(self, messages: list[Message]) -> str:
        """The text this model answers to ``messages``."""
        system = " ".join(m.text for m in messages if isinstance(m, SystemMessage))
        replies = _REPLIES["it" if re.search(r"italian|italiano", system, re.I) else "en"]
        humans = [m.text for m in messages if isinstance(m, HumanMessage)]
        if not humans:
            return replies["echo"].format(text="")
        last = humans[-1].strip()
        name = _introduced_name(last)
        if name is not None:
            return replies["intro"].format(name=name)
        if _NAME_QUESTION.search(last):
            known = [n for n in map(_introduced_name, humans[:-1]) if n is not None]
            if known:
                return replies["known"].format(name=known[-1])
            return replies["unknown"]
        return replies["echo"].format(text=last)

    def _generate(self, messages: list[Message], *, stop: list[str] | None = None) -> AIMessage:
        text = self.reply_text(messages)
        metadata, usage = reply_metadata(self.model_name, messages, text)
        return AIMessage(content=text, id=f"run-{uuid.uuid4()}", response_metadata=metadata,
                         usage_metadata=usage)

    def _stream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> Iterator[AIMessageChunk]:
        yield from word_chunks(self._generate(messages, stop=stop))

    async def _agenerate(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AIMessage:
        return self._generate(messages, stop=stop)

    async def _astream(
        self, messages: list[Message], *, stop: list[str] | None = None
    ) -> AsyncIterator[AIMessageChunk]:
        for chunk in word_chunks(self._generate(messages, stop=stop)):
            yield chunk
