"""``ChatHistory``: one session's history, read from the projections and written to the log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from chatledger.eventstore import (
    AIMessage,
    AnyMessage,
    AppendResult,
    ConcurrencyError,
    EventStore,
    HistoryCleared,
    HumanMessage,
    InvalidInputError,
    KeyLike,
    Message,
    MessageAppended,
    Record,
    SessionForked,
    SessionKey,
    get_buffer_string,
    open_store,
    redact_url,
)
from chatledger.eventstore._open import backend_of
from chatledger.projections._cache import history_cache
from chatledger.projections._coerce import (
    as_message,
    from_langchain_object,
    is_langchain_message,
    type_name,
)
from chatledger.projections._turns import OnConflict, Turn, turn_appends, turn_meta
from chatledger.projections._window import window as _window

__all__ = ["ChatHistory", "HistoryView", "shared_store"]

_stores: dict[str, EventStore] = {}
_stores_lock = threading.Lock()


def shared_store(url: str) -> EventStore:
    """One store per URL per process, so building a history per request costs microseconds.

    Raises:
        StoreError: The database cannot be opened.
    """
    store = _stores.get(url)
    if store is None:
        with _stores_lock:
            store = _stores.get(url)
            if store is None:
                store = open_store(url)
                _stores[url] = store
    return store


class HistoryView(msgspec.Struct, frozen=True):
    """The messages of a session as of ``version``."""

    version: int
    messages: list[Message]


def _check_messages(messages: Sequence[Any], what: str = "item") -> list[AnyMessage]:
    if isinstance(messages, (Message, str)) or is_langchain_message(messages) or not isinstance(
            messages, Sequence):
        raise InvalidInputError(
            f"add_messages takes a list of messages, got {type_name(messages)}"
        )
    out = []
    for i, message in enumerate(messages):
        try:
            # a LangChain message is converted; a streamed chunk becomes a whole message in
            # the store's append
            out.append(as_message(message, f"{what} {i}"))
        except InvalidInputError as e:
            raise InvalidInputError(f"{e}; nothing was saved") from e
    return out  # type: ignore[return-value]


def _checked_turn(turn: Turn) -> Turn:
    """``turn`` with its messages checked, and LangChain ones converted."""
    inputs = _check_messages(turn.input, "input item")
    outputs = _check_messages(turn.output, "output item")
    if (all(a is b for a, b in zip(inputs, turn.input, strict=True))
            and all(a is b for a, b in zip(outputs, turn.output, strict=True))):
        return turn
    return msgspec.structs.replace(turn, input=inputs, output=outputs)


def _fork_target_exists(source: SessionKey, conflict: ConcurrencyError) -> ConcurrencyError:
    """The store's conflict on a fork's first append, naming the session in the way."""
    return conflict.restated(
        f"cannot fork {source.stream_id!r} onto {conflict.stream_id!r}: that session already "
        f"exists (at version {conflict.actual_version}); nothing was written")


class ChatHistory:
    """The history of one session, shaped like LangChain's ``BaseChatMessageHistory``.

    Every write appends immutable events. The current history (``load``, ``messages``) comes
    from the store's history cache in this process: the first load of a session decodes it
    from the projection tables (O(messages in the session), never O(size of the log)); later
    loads read only the events after the cached version, so a turn's load costs the same at
    history 10 and 10,000. Every load checks the log, so two ``ChatHistory`` objects for one
    key, in any processes, always agree. The returned list is the caller's; its messages are
    shared with later loads, so treat them as read-only.

    Given a URL, the constructor does no I/O, so an ``async`` ``get_session_history`` can
    build one on the event loop: the URL's store is opened on first use (by a sync method in
    the calling thread, by an async one in a worker thread), once per URL per process
    (``shared_store``); a URL whose store is already open uses it at once.

    Args:
        key: The session key; a plain string means ``SessionKey(session_id=...)``.
        store_or_url: An open ``EventStore``, or a URL (one store is shared per URL per
            process). None means ``$CHATLEDGER_URL``, else ``./chatledger.db``.

    Raises:
        InvalidKeyError: The key is malformed.
        StoreError: The URL's scheme is unknown. Whatever else stops the store from opening
            (a malformed PostgreSQL URL, a server that cannot be reached, a file or schema
            that is not a ledger) is raised by the first method that uses the store.
    """

    __slots__ = ("_store", "_url", "key")

    def __init__(self, key: KeyLike, store_or_url: EventStore | str | None = None) -> None:
        self.key = SessionKey.coerce(key)
        self._store: EventStore | None
        if isinstance(store_or_url, EventStore):
            self._store, self._url = store_or_url, store_or_url.url
        elif store_or_url is None or isinstance(store_or_url, str):
            from chatledger.eventstore import default_url

            self._url = store_or_url or default_url()
            self._store = _stores.get(self._url)
            if self._store is None:
                backend_of(self._url)  # an unknown scheme is refused now, without I/O
        else:
            raise InvalidInputError(
                f"store_or_url must be an EventStore or a URL, got {type(store_or_url).__name__}"
            )

    @property
    def store(self) -> EventStore:
        """The store; given a URL, it is opened here on first use (``shared_store``).

        Raises:
            StoreError: The database cannot be opened.
        """
        store = self._store
        if store is None:
            store = self._store = shared_store(self._url)
        return store

    async def _astore(self) -> EventStore:
        """``store``, opened (on first use) in a worker thread rather than on the event loop."""
        store = self._store
        if store is None:
            store = _stores.get(self._url)
            if store is None:
                store = await asyncio.to_thread(shared_store, self._url)
            self._store = store
        return store

    def __repr__(self) -> str:
        return f"ChatHistory({self.key!r}, {redact_url(self._url)!r})"

    # -- reads -----------------------------------------------------------------------------
    def load(self) -> HistoryView:
        """The current messages and the version they reflect, in one read.

        Raises:
            StoreError: The database failed.
        """
        version, messages = history_cache(self.store).load(self.key)
        return HistoryView(version, messages)

    @property
    def messages(self) -> list[Message]:
        """The current history (after the last clear)."""
        return history_cache(self.store).load(self.key)[1]

    @property
    def version(self) -> int:
        """The stream's version: how many events the session has."""
        return self.store.version(self.key)

    def get_messages(self) -> list[Message]:
        """Same as ``messages``."""
        return self.messages

    def as_of(self, version: int | None = None, *, time: datetime | None = None) -> list[Message]:
        """The history as it stood at a version (0 = before the first event) or an aware time.

        Raises:
            InvalidInputError: Both or neither given, a negative version, a naive datetime.
            NotFoundError: ``version`` is beyond the session's current version.
        """
        return self.store.load_history_at(self.key, version=version, time=time)[1]

    def window(
        self,
        *,
        last: int | None = None,
        max_tokens: int | None = None,
        counter: Callable[[Message], int] | None = None,
    ) -> list[Message]:
        """The most recent messages within ``last`` messages and/or ``max_tokens`` tokens.

        Never separates an AI message's tool calls from their results: a tool result whose
        call would fall outside the window is left out, and the window shrinks to start after
        it (see ``projections.window``).

        Raises:
            InvalidInputError: No limit, or a limit that is not a positive int.
        """
        if last is None and max_tokens is None:
            raise InvalidInputError("window needs last=N or max_tokens=N")
        return _window(self.messages, last=last, max_tokens=max_tokens, counter=counter)

    def events(self, **kwargs: Any) -> list[Record]:
        """The raw events of this session (see ``EventStore.read`` for the filters)."""
        return self.store.read(self.key, **kwargs)

    def __str__(self) -> str:
        return get_buffer_string(self.messages)

    # -- writes ----------------------------------------------------------------------------
    def add_messages(
        self,
        messages: Sequence[Message],
        *,
        expected_version: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> AppendResult:
        """Append messages as one atomic append (one event per message).

        LangChain message objects (``langchain_core.messages``) are converted to chatledger's.

        Raises:
            InvalidInputError: An item is not a message, or a LangChain message chatledger
                cannot keep losslessly; nothing is saved.
            ConcurrencyError: ``expected_version`` is stale; nothing is saved.
            StoreError: The database failed; nothing is saved.
        """
        checked = _check_messages(messages)
        return self.store.append(self.key, [MessageAppended(message=m) for m in checked],
                                 expected_version=expected_version, meta=meta)

    def add_message(self, message: Message) -> AppendResult:
        """Append one message."""
        return self.add_messages([message])

    def add_user_message(self, message: HumanMessage | str) -> AppendResult:
        """Append a human message (a string becomes ``HumanMessage(content=...)``)."""
        if is_langchain_message(message):
            message = from_langchain_object(message)  # type: ignore[assignment]
        return self.add_message(message if isinstance(message, HumanMessage)
                                else HumanMessage(content=message))

    def add_ai_message(self, message: AIMessage | str) -> AppendResult:
        """Append an AI message (a string becomes ``AIMessage(content=...)``)."""
        if is_langchain_message(message):
            message = from_langchain_object(message)  # type: ignore[assignment]
        return self.add_message(message if isinstance(message, AIMessage)
                                else AIMessage(content=message))

    def clear(self, *, reason: str | None = None) -> AppendResult:
        """Empty the current history by appending ``HistoryCleared``; earlier versions stay."""
        return self.store.append(self.key, [HistoryCleared(reason=reason)])

    def record_turn(self, turn: Turn, *, on_conflict: OnConflict = "merge") -> AppendResult:
        """Record one chain turn in one atomic append: its messages and its ``RunRecorded``.

        A saved turn (status "ok") is appended on the version it read. If other turns were
        saved meanwhile, ``on_conflict="merge"`` appends it after them (its run still names
        the version it read), and ``"raise"`` raises. Merging retries, after a short random
        wait, for as long as other turns keep landing, so no number of concurrent turns makes
        it give up. A failed or cancelled turn appends only its run, with the input and any
        partial output held in it.

        Raises:
            ConcurrencyError: ``on_conflict="raise"`` and the session moved on; or the store
                reported conflicts without its version moving for ``MERGE_STALL_SECONDS``;
                nothing saved.
            InvalidInputError: An input or output item is not a message; nothing saved.
            StoreError: The database failed; nothing saved.
        """
        turn = _checked_turn(turn)
        head = 0 if turn.history_version is not None or turn.status != "ok" else self.version
        plan = turn_appends(turn, head, on_conflict)
        wait, events, expected = next(plan)
        while True:
            if wait:
                time.sleep(wait)
            try:
                return self.store.append(self.key, events, expected_version=expected,
                                         meta=turn_meta(turn))
            except ConcurrencyError as e:
                wait, events, expected = plan.send(e)

    def fork(self, new_key: KeyLike, *, at_version: int | None = None) -> ChatHistory:
        """Start a new session whose history is this one's as of ``at_version`` (default: now).

        The new stream begins with ``SessionForked``; this session is untouched.

        Raises:
            ConcurrencyError: The new session already exists (has events); the message names
                it, and nothing is written.
            InvalidInputError: ``new_key`` is this session's own key.
            NotFoundError: ``at_version`` is beyond this session's version.
        """
        target = SessionKey.coerce(new_key)
        if target == self.key:
            raise InvalidInputError("a session cannot be forked onto itself")
        if at_version is None:
            version, messages = self.store.load_history(self.key)
        else:
            version, messages = self.store.load_history_at(self.key, version=at_version)
        inherited: list[AnyMessage] = messages  # type: ignore[assignment]
        try:
            self.store.append(target, [SessionForked(parent=self.key.parts,
                                                     parent_version=version,
                                                     messages=inherited)], expected_version=0)
        except ConcurrencyError as e:
            raise _fork_target_exists(self.key, e) from e
        return ChatHistory(target, self.store)

    # -- async twins -----------------------------------------------------------------------
    async def aload(self) -> HistoryView:
        """``load`` without blocking the event loop."""
        version, messages = await history_cache(await self._astore()).aload(self.key)
        return HistoryView(version, messages)

    async def aget_messages(self) -> list[Message]:
        """``messages`` without blocking the event loop."""
        return (await history_cache(await self._astore()).aload(self.key))[1]

    async def aadd_messages(
        self,
        messages: Sequence[Message],
        *,
        expected_version: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> AppendResult:
        """``add_messages`` without blocking the event loop."""
        checked = _check_messages(messages)
        store = await self._astore()
        return await store.aappend(self.key, [MessageAppended(message=m) for m in checked],
                                   expected_version=expected_version, meta=meta)

    async def aadd_message(self, message: Message) -> AppendResult:
        """``add_message`` without blocking the event loop."""
        return await self.aadd_messages([message])

    async def arecord_turn(self, turn: Turn, *,
                           on_conflict: OnConflict = "merge") -> AppendResult:
        """``record_turn`` without blocking the event loop."""
        turn = _checked_turn(turn)
        store = await self._astore()
        head = (0 if turn.history_version is not None or turn.status != "ok"
                else await self.aversion())
        plan = turn_appends(turn, head, on_conflict)
        wait, events, expected = next(plan)
        while True:
            if wait:
                await asyncio.sleep(wait)
            try:
                return await store.aappend(self.key, events, expected_version=expected,
                                           meta=turn_meta(turn))
            except ConcurrencyError as e:
                wait, events, expected = plan.send(e)

    async def aclear(self, *, reason: str | None = None) -> AppendResult:
        """``clear`` without blocking the event loop."""
        store = await self._astore()
        return await store.aappend(self.key, [HistoryCleared(reason=reason)])

    async def aas_of(self, version: int | None = None, *,
                     time: datetime | None = None) -> list[Message]:
        """``as_of`` without blocking the event loop."""
        store = await self._astore()
        return (await store.aload_history_at(self.key, version=version, time=time))[1]

    async def aversion(self) -> int:
        """``version`` without blocking the event loop."""
        store = await self._astore()
        return await asyncio.to_thread(store.version, self.key)
