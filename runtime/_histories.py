"""The one boundary between ``RunnableWithMessageHistory`` and a session's history object.

``get_session_history`` may return a ``ChatHistory`` (the ledger: a turn is one atomic append
with its run) or any object shaped like LangChain's ``BaseChatMessageHistory`` (``messages``
plus ``add_messages`` or ``add_message``). ``adapt_history`` wraps either in a ``TurnHistory``,
so the wrapper itself never asks which kind it holds. Other kinds (LangChain's own histories,
whose messages need converting) register an adapter with ``register_history_adapter``.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from chatledger.eventstore import InvalidInputError, Message
from chatledger.projections import ChatHistory, OnConflict, Turn

__all__ = ["TurnHistory", "adapt_history", "register_history_adapter"]


class TurnHistory(ABC):
    """What the wrapper needs of a history: load it once, record a turn once.

    Attributes:
        raw: The object the factory returned (inner runnables see it as
            ``config["configurable"]["message_history"]``).
        records_runs: Whether failed and cancelled runs can be recorded too.
    """

    raw: Any
    records_runs: bool = False

    @abstractmethod
    def load(self) -> tuple[int | None, list[Message]]:
        """The history's version (None when it has none) and its messages."""

    @abstractmethod
    async def aload(self) -> tuple[int | None, list[Message]]:
        """``load`` without blocking the event loop."""

    @abstractmethod
    def record_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        """Save a turn (status "ok"); record a failed one where ``records_runs``."""

    @abstractmethod
    async def arecord_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        """``record_turn`` without blocking the event loop."""


class _Ledger(TurnHistory):
    """A ``ChatHistory``: the turn, its messages and its run in one append."""

    records_runs = True

    def __init__(self, history: ChatHistory) -> None:
        self.raw = history

    def load(self) -> tuple[int | None, list[Message]]:
        view = self.raw.load()
        return view.version, view.messages

    async def aload(self) -> tuple[int | None, list[Message]]:
        view = await self.raw.aload()
        return view.version, view.messages

    def record_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        self.raw.record_turn(turn, on_conflict=on_conflict)

    async def arecord_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        await self.raw.arecord_turn(turn, on_conflict=on_conflict)


def _has(obj: Any, name: str) -> bool:
    # getattr_static: evaluating a ``messages`` property would be a read (I/O).
    return inspect.getattr_static(obj, name, None) is not None


class _Foreign(TurnHistory):
    """Any ``messages`` + ``add_messages``/``add_message`` object: a saved turn's messages go
    to ``add_messages`` once; it keeps no version and no runs."""

    def __init__(self, history: Any) -> None:
        self.raw = history

    def load(self) -> tuple[int | None, list[Message]]:
        return None, list(self.raw.messages)

    async def aload(self) -> tuple[int | None, list[Message]]:
        if _has(self.raw, "aget_messages"):
            return None, list(await self.raw.aget_messages())
        return None, list(await asyncio.to_thread(lambda: self.raw.messages))

    def record_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        if turn.status != "ok":
            return
        messages = [*turn.input, *turn.output]
        if _has(self.raw, "add_messages"):
            self.raw.add_messages(messages)
        else:
            for message in messages:
                self.raw.add_message(message)

    async def arecord_turn(self, turn: Turn, *, on_conflict: OnConflict) -> None:
        if turn.status != "ok":
            return
        messages = [*turn.input, *turn.output]
        if _has(self.raw, "aadd_messages"):
            await self.raw.aadd_messages(messages)
        elif _has(self.raw, "add_messages"):
            await asyncio.to_thread(self.raw.add_messages, messages)
        else:
            for message in messages:
                await asyncio.to_thread(self.raw.add_message, message)


_ADAPTERS: list[tuple[Callable[[Any], bool], Callable[[Any], TurnHistory]]] = [
    (lambda obj: isinstance(obj, ChatHistory), _Ledger),
]


def register_history_adapter(accepts: Callable[[Any], bool],
                             make: Callable[[Any], TurnHistory]) -> None:
    """Teach ``adapt_history`` a kind of history: ``make(obj)`` when ``accepts(obj)``.

    Adapters are tried in the order they were registered (the ledger's first); an object no
    adapter accepts is used through its ``messages``/``add_messages``.
    """
    _ADAPTERS.append((accepts, make))


def adapt_history(obj: Any) -> TurnHistory:
    """The ``TurnHistory`` for what ``get_session_history`` returned.

    Raises:
        InvalidInputError: ``obj`` has no ``messages`` or no ``add_messages``/``add_message``.
    """
    for accepts, make in _ADAPTERS:
        if accepts(obj):
            return make(obj)
    if not _has(obj, "messages") or not (_has(obj, "add_messages") or _has(obj, "add_message")):
        raise InvalidInputError(
            f"get_session_history returned {type(obj).__name__}, which has no "
            "messages/add_messages; return a chatledger.projections.ChatHistory"
        )
    return _Foreign(obj)
