"""Messages at the boundary: chatledger's own, or LangChain's converted to them.

LangChain message objects are recognised by their class ancestry (``BaseMessage`` in
``langchain_core.messages``) and converted through their ``model_dump()``, which is LangChain's
own ``message_to_dict`` data, so ``langchain_core`` is never imported here. The runtime's
LangChain bridge converts with the same function.
"""

from __future__ import annotations

from typing import Any

from chatledger.eventstore import InvalidInputError, Message, from_langchain_dict

__all__ = ["as_message", "from_langchain_object", "is_langchain_message", "type_name"]

ACCEPTED = ("a chatledger message (chatledger.eventstore.HumanMessage, AIMessage, …) or a "
            "LangChain message (langchain_core.messages.BaseMessage)")


def is_langchain_message(value: Any) -> bool:
    """True for a LangChain message object (an instance of ``BaseMessage`` or a subclass)."""
    return (any(cls.__name__ == "BaseMessage" and cls.__module__.startswith("langchain_core.")
                for cls in type(value).__mro__)
            and isinstance(getattr(value, "type", None), str)
            and callable(getattr(value, "model_dump", None)))


def type_name(value: Any) -> str:
    """The class of ``value`` with its module (``langchain_core.messages.human.HumanMessage``);
    just the name for builtins."""
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def from_langchain_object(message: Any) -> Message:
    """chatledger's message for a LangChain message object (a chunk stays a chunk).

    Raises:
        InvalidInputError: Not a LangChain message, or a type or field chatledger cannot keep
            losslessly (the error names it).
    """
    if not is_langchain_message(message):
        raise InvalidInputError(f"expected a LangChain message, got {type_name(message)}")
    return from_langchain_dict({"type": message.type, "data": message.model_dump()})


def as_message(value: Any, where: str) -> Message:
    """``value`` as chatledger's message: its own messages as they are, LangChain's converted.

    Args:
        value: The item to check.
        where: What ``value`` is, for the error (``"input item 0"``).

    Raises:
        InvalidInputError: Anything else (naming its class with its module, and what is
            accepted), or a LangChain message chatledger cannot keep losslessly.
    """
    if isinstance(value, Message):
        return value
    if is_langchain_message(value):
        try:
            return from_langchain_object(value)
        except InvalidInputError as e:
            raise InvalidInputError(f"{where} ({type_name(value)}): {e}") from e
    raise InvalidInputError(f"{where} is a {type_name(value)}, not a message; expected {ACCEPTED}")
