"""chatledger's store as LangChain's ``BaseChatMessageHistory``.

An existing LangChain app keeps its chain and its ``RunnableWithMessageHistory`` and changes one
line, the history factory::

    def get_session_history(session_id):
        return ChatledgerMessageHistory(session_id, "sqlite:///memory.db")

Every message then becomes an event in the log, so the app gains the audit trail, as-of reads
(``.history.as_of(version=3)``), windows and export. Messages convert losslessly in both
directions through LangChain's ``message_to_dict``/``messages_from_dict`` form; a streamed
``AIMessageChunk`` is saved as the whole ``AIMessage`` it adds up to.

This module needs ``langchain-core`` (``pip install 'chatledger[langchain]'``); nothing else in
chatledger imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        BaseMessage,
        message_chunk_to_message,
        message_to_dict,
        messages_from_dict,
    )
except ImportError as e:  # name the extra that brings it, not just the missing module
    raise ImportError(f"chatledger.runtime.langchain needs langchain-core ({e}): "
                      "pip install 'chatledger[langchain]'") from e

from chatledger.eventstore import (
    EventStore,
    InvalidInputError,
    KeyLike,
    Message,
    SessionKey,
    from_langchain_dict,
    to_langchain_dict,
)
from chatledger.projections import ChatHistory

__all__ = [
    "ChatledgerMessageHistory",
    "from_langchain_message",
    "from_langchain_messages",
    "to_langchain_message",
    "to_langchain_messages",
]


def from_langchain_message(message: BaseMessage) -> Message:
    """Convert a LangChain message to chatledger's; a chunk becomes the whole message.

    Raises:
        InvalidInputError: Not a LangChain message, or a type or field chatledger cannot keep
            losslessly (the message names it).
    """
    if isinstance(message, Message):
        raise InvalidInputError(
            f"got chatledger's {type(message).__name__}, not a LangChain message; with "
            "chatledger's own runtime use projections.ChatHistory instead; nothing was saved"
        )
    if not isinstance(message, BaseMessage):
        raise InvalidInputError(
            f"expected a LangChain message, got {type(message).__name__}; nothing was saved"
        )
    whole = message_chunk_to_message(message)
    return from_langchain_dict(message_to_dict(whole))


def from_langchain_messages(messages: Iterable[BaseMessage]) -> list[Message]:
    """Convert LangChain messages to chatledger's, all or none.

    Raises:
        InvalidInputError: An item cannot be converted; the message names its index.
    """
    if isinstance(messages, (BaseMessage, str)):
        raise InvalidInputError(
            f"expected a sequence of LangChain messages, got {type(messages).__name__}"
        )
    out = []
    for i, message in enumerate(messages):
        try:
            out.append(from_langchain_message(message))
        except InvalidInputError as e:
            raise InvalidInputError(f"message {i}: {e}") from e
    return out


def to_langchain_message(message: Message) -> BaseMessage:
    """Convert a chatledger message to LangChain's."""
    converted: BaseMessage = messages_from_dict([to_langchain_dict(message)])[0]
    return converted


def to_langchain_messages(messages: Iterable[Message]) -> list[BaseMessage]:
    """Convert chatledger messages to LangChain's, in order."""
    dicts = [to_langchain_dict(m) for m in messages]
    converted: list[BaseMessage] = messages_from_dict(dicts)
    return converted


class ChatledgerMessageHistory(BaseChatMessageHistory):  # type: ignore[misc]
    """A LangChain chat history whose messages live in chatledger's event log.

    Reads come from the history projection (O(messages in the session)); each
    ``add_messages`` call is one atomic append, and ``clear`` appends ``HistoryCleared`` so the
    cleared messages stay readable through ``.history.as_of(...)``. Nothing is cached: two
    instances for one key always agree. The async methods never block the event loop.

    Args:
        session_key: The session key: a string (``SessionKey(session_id=...)``), a
            ``SessionKey``, or a mapping of key parts such as
            ``{"user_id": "123", "conversation_id": "1"}``.
        store_or_url: An open ``EventStore`` or a store URL such as ``"sqlite:///memory.db"``
            (one store is shared per URL per process). None means ``$CHATLEDGER_URL``, else
            ``./chatledger.db``.

    Raises:
        InvalidKeyError: The key is malformed.
        InvalidInputError: ``store_or_url`` is neither a store nor a URL.
        StoreError: The database cannot be opened.
    """

    def __init__(self, session_key: KeyLike, store_or_url: EventStore | str | None = None) -> None:
        super().__init__()
        self._history = ChatHistory(session_key, store_or_url)

    def __repr__(self) -> str:
        return f"ChatledgerMessageHistory({self._history.key!r}, {self._history.store.url!r})"

    @property
    def history(self) -> ChatHistory:
        """The underlying ``ChatHistory``: ``as_of``, ``window``, ``events``, ``version``."""
        return self._history

    @property
    def session_key(self) -> SessionKey:
        """The ``SessionKey`` this history reads and writes."""
        return self._history.key

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The current history (after the last clear), as LangChain messages."""
        return to_langchain_messages(self._history.messages)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages as one atomic append.

        Raises:
            InvalidInputError: An item cannot be converted; nothing is saved.
            StoreError: The database failed; nothing is saved.
        """
        self._history.add_messages(from_langchain_messages(messages))

    def add_message(self, message: BaseMessage) -> None:
        """Append one message.

        Raises:
            InvalidInputError: The message cannot be converted; nothing is saved.
            StoreError: The database failed; nothing is saved.
        """
        self._history.add_messages([from_langchain_message(message)])

    def clear(self) -> None:
        """Empty the current history; earlier versions stay readable in the log."""
        self._history.clear()

    async def aget_messages(self) -> list[BaseMessage]:
        """``messages`` without blocking the event loop."""
        return to_langchain_messages(await self._history.aget_messages())

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """``add_messages`` without blocking the event loop.

        Raises:
            InvalidInputError: An item cannot be converted; nothing is saved.
            StoreError: The database failed; nothing is saved.
        """
        await self._history.aadd_messages(from_langchain_messages(messages))

    async def aclear(self) -> None:
        """``clear`` without blocking the event loop."""
        await self._history.aclear()
