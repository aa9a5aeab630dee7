"""Turning loose model inputs (strings, pairs, prompt values) into messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    InvalidInputError,
    Message,
    SystemMessage,
)
from chatledger.projections import as_message, is_langchain_message, type_name

__all__ = ["coerce_messages", "message_from_role"]

_ROLES: dict[str, type[Message]] = {
    "human": HumanMessage,
    "user": HumanMessage,
    "ai": AIMessage,
    "assistant": AIMessage,
    "system": SystemMessage,
    "developer": SystemMessage,
}


def message_from_role(role: str, content: Any) -> Message:
    """A message for a ``(role, content)`` pair: human/user, ai/assistant, system, or a chat role.

    Raises:
        InvalidInputError: ``role`` is not a non-empty string.
    """
    if not isinstance(role, str) or not role:
        raise InvalidInputError(f"message role must be a non-empty string, got {role!r}")
    cls = _ROLES.get(role)
    if cls is None:
        return ChatMessage(content=content, role=role)
    return cls(content=content)


def coerce_messages(value: Any) -> list[Message]:
    """Turn a model input into a list of messages.

    Accepts a string (one human message), a message (chatledger's, or LangChain's, converted),
    a prompt value with ``to_messages()``, or a list of messages, strings and ``(role,
    content)`` pairs.

    Raises:
        InvalidInputError: Anything else, naming what was given.
    """
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    if isinstance(value, Message):
        return [value]
    if is_langchain_message(value):
        return [as_message(value, "model input")]
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        return coerce_messages(list(to_messages()))
    if type(value) is list and all(issubclass(t, Message) for t in set(map(type, value))):
        # The common case, a prompt's whole history: checked at C speed, since a turn passes
        # every message of the conversation through here.
        return list(value)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out: list[Message] = []
        for i, item in enumerate(value):
            if isinstance(item, Message):
                out.append(item)
            elif isinstance(item, str):
                out.append(HumanMessage(content=item))
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                out.append(message_from_role(item[0], item[1]))
            elif is_langchain_message(item):
                out.append(as_message(item, f"model input item {i}"))
            else:
                raise InvalidInputError(
                    f"model input item {i} is a {type_name(item)}; expected a message "
                    "(chatledger's or LangChain's), a string or a (role, content) pair"
                )
        return out
    raise InvalidInputError(
        f"a chat model takes a string, a message, a list of messages or a prompt value, "
        f"got {type_name(value)}"
    )
