"""The shape rules of ``RunnableWithMessageHistory``: which part of an input or output is saved.

They follow LangChain's rules (reference section 1.3 and 1.5), except that anything that cannot
be saved raises ``InvalidInputError`` instead of being stored or silently dropped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    InvalidInputError,
    Message,
)
from chatledger.projections import as_message, is_langchain_message, type_name
from chatledger.runtime._config import ConfigurableFieldSpec

__all__ = [
    "DEFAULT_SESSION_SPEC",
    "factory_parameters",
    "input_messages",
    "output_messages",
    "runnable_input",
    "session_arguments",
    "whole",
]

DEFAULT_SESSION_SPEC = ConfigurableFieldSpec(
    id="session_id",
    annotation=str,
    name="Session ID",
    description="Unique identifier for a session.",
    default="",
    is_shared=True,
)


def whole(message: Message) -> Message:
    """A message fit to store: a streamed chunk becomes the whole message it adds up to."""
    return message.to_message() if isinstance(message, AIMessageChunk) else message


def _pick(value: Mapping[str, Any], key: str | None, fallback: str, what: str) -> Any:
    """LangChain's key rule: the configured key, else the only key, else ``fallback``."""
    name = key if key is not None else (next(iter(value)) if len(value) == 1 else fallback)
    if name not in value:
        hint = f"{what}_messages_key={name!r}" if key is not None else f"the key {name!r}"
        raise InvalidInputError(
            f"the {what} dict has no key {name!r} (keys: {sorted(value)}); {hint} names the "
            f"{what} messages" + (f"; set {what}_messages_key" if key is None else "")
        )
    return value[name]


def _message_list(items: Sequence[Any], what: str) -> list[Message]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(whole(as_message(item, f"{what} item {i}")))
        except InvalidInputError as e:
            raise InvalidInputError(f"{e}; nothing was saved") from e
    return out


def input_messages(value: Any, input_messages_key: str | None) -> list[Message]:
    """The new messages of a turn's input.

    A dict gives the value under ``input_messages_key``, its only key, or ``"input"``. A string
    is one human message; a message is itself; a list (or a one-item list of lists) is its
    messages. LangChain messages are converted to chatledger's.

    Raises:
        InvalidInputError: A missing key, a non-message item, or another type.
    """
    if isinstance(value, Mapping):
        value = _pick(value, input_messages_key, "input", "input")
    if isinstance(value, str):
        return [HumanMessage(content=value)]
    if isinstance(value, Message) or is_langchain_message(value):
        return _message_list([value], "input")
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], list):
            if len(value) != 1:
                raise InvalidInputError(f"expected a single list of messages, got {value!r}")
            value = value[0]
        return _message_list(value, "input")
    raise InvalidInputError(
        f"expected str, a message, or a list or tuple of messages as input, got a "
        f"{type_name(value)}: {value!r}"
    )


def runnable_input(value: Any, loaded: Sequence[Message], new_input: Sequence[Message], *,
                   input_messages_key: str | None, history_messages_key: str | None) -> Any:
    """What the wrapped runnable receives: the input shaped with the history (LangChain's rules).

    Without keys, the history followed by the new messages; with ``history_messages_key``, the
    input dict plus the history under that key; with only ``input_messages_key``, the input
    dict with the history prepended to its messages.
    """
    messages_key = history_messages_key or input_messages_key
    if messages_key is None:
        return [*loaded, *new_input]
    if history_messages_key is not None:
        return {**value, history_messages_key: list(loaded)}
    return {**value, messages_key: [*loaded, *new_input]}


def output_messages(value: Any, output_messages_key: str | None) -> list[Message]:
    """The messages to save from the wrapped runnable's output.

    A dict gives the value under ``output_messages_key``, its only key, or ``"output"``. A
    string is one AI message; a message is itself (a chunk becomes the whole message); a list
    or tuple is its messages. LangChain messages are converted to chatledger's.

    Raises:
        InvalidInputError: A missing key, a non-message item, or another type.
    """
    if isinstance(value, Mapping):
        value = _pick(value, output_messages_key, "output", "output")
    if isinstance(value, str):
        return [AIMessage(content=value)]
    if isinstance(value, Message) or is_langchain_message(value):
        return _message_list([value], "output")
    if isinstance(value, (list, tuple)):
        return _message_list(value, "output")
    raise InvalidInputError(
        f"expected str, a message, or a list or tuple of messages as output, got a "
        f"{type_name(value)}: {value!r}"
    )


def factory_parameters(
    factory: Callable[..., Any], specs: Sequence[ConfigurableFieldSpec]
) -> list[str]:
    """The parameter names of ``get_session_history`` (``*args``/``**kwargs`` names included).

    A callable whose signature cannot be read is taken to match the specs.
    """
    try:
        return list(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return [spec.id for spec in specs]


def session_arguments(
    parameters: Sequence[str],
    specs: Sequence[ConfigurableFieldSpec],
    configurable: Mapping[str, Any],
    *,
    input_messages_key: str | None,
) -> tuple[list[Any], dict[str, Any]]:
    """The arguments for ``get_session_history(*parameters)``, from ``config["configurable"]``.

    One spec: the value is passed positionally (a zero-argument factory gets nothing and needs
    no config). Several specs: they must match the factory's parameter names and are passed by
    keyword. A key present with the value None counts as given; spec defaults are not applied.

    Raises:
        InvalidInputError: Keys missing from the config (naming them and the expected keys), or
            specs that do not match the factory's parameters. It is also a ``ValueError``.
    """
    expected = [spec.id for spec in specs]
    if parameters:
        missing = set(expected) - set(configurable)
        if missing:
            example_input = ({input_messages_key: "foo"} if input_messages_key is not None
                             else "foo")
            example_config = {"configurable": {k: "[your-value-here]" for k in sorted(missing)}}
            raise InvalidInputError(
                f"Missing keys {sorted(missing)} in config['configurable'] "
                f"Expected keys are {sorted(expected)}. "
                "When using via .invoke() or .stream(), pass in a config; "
                f"e.g., chain.invoke({example_input!r}, {example_config!r})"
            )
    if len(expected) == 1:
        return ([configurable[expected[0]]] if parameters else []), {}
    if set(expected) != set(parameters):
        raise InvalidInputError(
            f"Expected keys {sorted(expected)} do not match parameter names "
            f"{sorted(parameters)} of get_session_history."
        )
    return [], {key: configurable[key] for key in expected}
