"""chatledger's store as LangChain's ``BaseChatMessageHistory``.

An existing LangChain app keeps its chain and its ``RunnableWithMessageHistory`` and changes one
line, the history factory::

    def get_session_history(session_id):
        return ChatledgerMessageHistory(session_id, "sqlite:///memory.db")

Every message then becomes an event in the log, so the app gains the audit trail, as-of reads
(``.history.as_of(version=3)``), windows and export. Messages convert losslessly in both
directions through LangChain's ``message_to_dict``/``messages_from_dict`` form; a streamed
``AIMessageChunk`` is saved as the whole ``AIMessage`` it adds up to.

The other way round, any LangChain runnable (a chat model, a retriever, a tool, an output
parser, a prompt) composes in chatledger's chains: ``coerce_to_runnable`` wraps it in
``LangChainRunnable``, which converts messages at the boundary both ways, streaming and async
included.

This module needs ``langchain-core`` (``pip install 'chatledger[langchain]'``); the rest of
chatledger imports it only through here, when it meets a LangChain object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        BaseMessage,
        message_chunk_to_message,
        messages_from_dict,
    )
    from langchain_core.prompt_values import ChatPromptValue as LCChatPromptValue
    from langchain_core.prompt_values import PromptValue as LCPromptValue
    from langchain_core.runnables import Runnable as LCRunnable
except ImportError as e:  # name the extra that brings it, not just the missing module
    raise ImportError(f"chatledger.runtime.langchain needs langchain-core ({e}): "
                      "pip install 'chatledger[langchain]'") from e

from chatledger.eventstore import (
    EventStore,
    InvalidInputError,
    KeyLike,
    Message,
    SessionKey,
    to_langchain_dict,
)
from chatledger.projections import ChatHistory, OnConflict, Turn, from_langchain_object
from chatledger.runtime._config import RunnableConfig
from chatledger.runtime._histories import TurnHistory
from chatledger.runtime._prompts import ChatPromptValue
from chatledger.runtime._runnable import Runnable
from chatledger.runtime._streams import closing_stream

__all__ = [
    "ChatledgerMessageHistory",
    "LangChainHistory",
    "LangChainRunnable",
    "from_langchain_runnable",
    "from_langchain_value",
    "from_langchain_message",
    "from_langchain_history",
    "from_langchain_messages",
    "to_langchain_message",
    "to_langchain_messages",
    "to_langchain_value",
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
    return from_langchain_object(message_chunk_to_message(message))


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


# -- LangChain runnables inside chatledger's chains -------------------------------------------
# the config keys LangChain understands; chatledger's run_id is not a UUID LangChain would take
_LC_CONFIG_KEYS = ("tags", "metadata", "configurable", "run_name", "max_concurrency",
                   "recursion_limit", "callbacks")


def to_langchain_value(value: Any) -> Any:
    """chatledger messages (and prompt values) to LangChain's, inside lists, tuples and dicts.

    Chunks stay chunks, so a stream keeps streaming; anything else passes unchanged.
    """
    if isinstance(value, Message):
        converted: BaseMessage = messages_from_dict([to_langchain_dict(value)])[0]
        return converted
    if isinstance(value, ChatPromptValue):
        return LCChatPromptValue(messages=[to_langchain_value(m) for m in value.messages])
    if isinstance(value, (list, tuple)):
        return type(value)(to_langchain_value(v) for v in value)
    if isinstance(value, dict):
        return {k: to_langchain_value(v) for k, v in value.items()}
    return value


def from_langchain_value(value: Any) -> Any:
    """LangChain messages (and prompt values) to chatledger's, inside lists, tuples and dicts.

    Raises:
        InvalidInputError: A message chatledger cannot hold losslessly (the error names it).
    """
    if isinstance(value, BaseMessage):
        return from_langchain_object(value)
    if isinstance(value, LCChatPromptValue):
        return ChatPromptValue([from_langchain_value(m) for m in value.messages])
    if isinstance(value, LCPromptValue):
        return value.to_string()
    if isinstance(value, (list, tuple)):
        return type(value)(from_langchain_value(v) for v in value)
    if isinstance(value, dict):
        return {k: from_langchain_value(v) for k, v in value.items()}
    return value


def _lc_config(config: RunnableConfig | None) -> Any:
    return {k: config[k] for k in _LC_CONFIG_KEYS if config and k in config}  # type: ignore[literal-required]


class LangChainRunnable(Runnable[Any, Any]):
    """A LangChain runnable as a step of a chatledger chain.

    Inputs go in as LangChain values and outputs come back as chatledger values (messages,
    prompt values, inside lists and dicts), so a LangChain chat model, retriever, tool or output
    parser sits between chatledger steps and inside ``RunnableWithMessageHistory``. Streams
    stay streams (chunks convert one by one); the async methods use LangChain's own.

    Args:
        runnable: Any ``langchain_core.runnables.Runnable``.

    Raises:
        InvalidInputError: ``runnable`` is not a LangChain runnable.
    """

    def __init__(self, runnable: Any) -> None:
        if not isinstance(runnable, LCRunnable):
            raise InvalidInputError(f"expected a LangChain Runnable, got {type(runnable).__name__}")
        self.runnable = runnable

    def __repr__(self) -> str:
        return f"LangChainRunnable({self.runnable!r})"

    def get_name(self) -> str:
        """The LangChain runnable's name."""
        return self.name or str(self.runnable.get_name())

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Invoke the LangChain runnable, converting at the boundary."""
        return from_langchain_value(self.runnable.invoke(to_langchain_value(input),
                                                         _lc_config(config)))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """LangChain's own ``ainvoke``, converting at the boundary."""
        return from_langchain_value(await self.runnable.ainvoke(to_langchain_value(input),
                                                                _lc_config(config)))

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[Any]:
        """LangChain's ``stream``, each chunk converted."""
        for chunk in self.runnable.stream(to_langchain_value(input), _lc_config(config)):
            yield from_langchain_value(chunk)

    async def astream(self, input: Any, config: RunnableConfig | None = None
                      ) -> AsyncIterator[Any]:
        """LangChain's ``astream``, each chunk converted."""
        stream = self.runnable.astream(to_langchain_value(input), _lc_config(config))
        async with closing_stream(stream):
            async for chunk in stream:
                yield from_langchain_value(chunk)

    def transform(self, inputs: Iterator[Any], config: RunnableConfig | None = None
                  ) -> Iterator[Any]:
        """LangChain's ``transform`` over converted input chunks (a stream passes through)."""
        lc_inputs = (to_langchain_value(chunk) for chunk in inputs)
        for chunk in self.runnable.transform(lc_inputs, _lc_config(config)):
            yield from_langchain_value(chunk)

    async def atransform(self, inputs: AsyncIterator[Any], config: RunnableConfig | None = None
                         ) -> AsyncIterator[Any]:
        """LangChain's ``atransform`` over converted input chunks."""
        async def lc_inputs() -> AsyncIterator[Any]:
            async with closing_stream(inputs):
                async for chunk in inputs:
                    yield to_langchain_value(chunk)

        converted = lc_inputs()
        stream = self.runnable.atransform(converted, _lc_config(config))
        # LangChain may stop without closing its input stream; close both (its own first).
        async with closing_stream(converted), closing_stream(stream):
            async for chunk in stream:
                yield from_langchain_value(chunk)


def from_langchain_runnable(runnable: Any) -> LangChainRunnable:
    """Wrap a LangChain runnable for chatledger's chains (``coerce_to_runnable`` calls this).

    Raises:
        InvalidInputError: Not a LangChain runnable.
    """
    return LangChainRunnable(runnable)


# -- LangChain histories as factory results of chatledger's RunnableWithMessageHistory ----------
class LangChainHistory(TurnHistory):
    """A LangChain ``BaseChatMessageHistory`` behind chatledger's ``RunnableWithMessageHistory``.

    The history is read once per turn and its messages converted to chatledger's; a saved
    turn's input and output go to ``add_messages`` once, as LangChain messages. Such a history
    keeps no versions and no runs, so failed turns leave no trace in it. A
    ``ChatledgerMessageHistory`` is recognised and used as the ledger it is (one atomic append
    per turn, failed runs recorded).

    Args:
        history: The object the factory returned.
    """

    def __init__(self, history: BaseChatMessageHistory) -> None:
        self.raw = history
        self._ledger = history.history if isinstance(history, ChatledgerMessageHistory) else None
        self.records_runs = self._ledger is not None
        # LangChain's SQL history in sync mode has async methods that raise; use its sync ones
        # in a worker thread instead
        self._sync_only = not getattr(history, "async_mode", True)

    def load(self) -> tuple[int | None, list[Message]]:
        """The history's messages, converted (and the ledger's version, if it is one)."""
        if self._ledger is not None:
            view = self._ledger.load()
            return view.version, view.messages
        return None, from_langchain_messages(self.raw.messages)

    async def aload(self) -> tuple[int | None, list[Message]]:
        """``load`` without blocking the event loop."""
        if self._ledger is not None:
            view = await self._ledger.aload()
            return view.version, view.messages
        if self._sync_only:
            return None, from_langchain_messages(await asyncio.to_thread(lambda: self.raw.messages))
        return None, from_langchain_messages(await self.raw.aget_messages())

    def record_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        """Save a successful turn's messages with one ``add_messages`` call.

        Raises:
            InvalidInputError: A message LangChain cannot take; nothing was saved.
        """
        if self._ledger is not None:
            self._ledger.record_turn(turn, on_conflict=on_conflict)
        elif turn.status == "ok":
            self.raw.add_messages(to_langchain_messages([*turn.input, *turn.output]))

    async def arecord_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        """``record_turn`` without blocking the event loop."""
        if self._ledger is not None:
            await self._ledger.arecord_turn(turn, on_conflict=on_conflict)
        elif turn.status == "ok":
            messages = to_langchain_messages([*turn.input, *turn.output])
            if self._sync_only:
                await asyncio.to_thread(self.raw.add_messages, messages)
            else:
                await self.raw.aadd_messages(messages)


def from_langchain_history(history: Any) -> LangChainHistory:
    """The wrapper's view of a LangChain history (``adapt_history`` calls this).

    Raises:
        InvalidInputError: Not a LangChain ``BaseChatMessageHistory``.
    """
    if not isinstance(history, BaseChatMessageHistory):
        raise InvalidInputError(f"expected a LangChain BaseChatMessageHistory, got "
                                f"{type(history).__name__}")
    return LangChainHistory(history)
