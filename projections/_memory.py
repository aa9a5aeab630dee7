"""``InMemoryChatMessageHistory``: a ``ChatHistory`` on a ledger of its own, in memory."""

from __future__ import annotations

from collections.abc import Sequence

from chatledger.eventstore import KeyLike, Message, open_store
from chatledger.projections._history import ChatHistory

__all__ = ["InMemoryChatMessageHistory"]


class InMemoryChatMessageHistory(ChatHistory):
    """A history that lives only as long as the object: LangChain's class of the same name.

    It is a ``ChatHistory`` on its own ``sqlite://:memory:`` ledger, so it behaves like any
    other (versions, ``as_of``, ``clear`` keeps earlier versions, a wrapper's turn records its
    run) and code or tests written against LangChain's in-memory history port unchanged. Two
    of them are equal when their current messages are, as LangChain's are.

    Args:
        messages: Messages to start with (appended as the first event of the history).
        key: The session key inside its ledger.

    Raises:
        InvalidInputError: An item of ``messages`` is not a message.
    """

    __slots__ = ()

    def __init__(self, messages: Sequence[Message] = (), *,
                 key: KeyLike = "in-memory") -> None:
        super().__init__(key, open_store("sqlite://:memory:"))
        if messages:
            self.add_messages(messages)

    def __repr__(self) -> str:
        return f"InMemoryChatMessageHistory(messages={self.messages!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InMemoryChatMessageHistory):
            return NotImplemented
        return self.messages == other.messages

    __hash__ = None  # type: ignore[assignment]  # equal by (mutable) contents
