"""``ChatPromptTemplate`` and ``MessagesPlaceholder``: prompts that format into messages."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from chatledger.eventstore import InvalidInputError, Message, get_buffer_string
from chatledger.runtime._config import RunnableConfig
from chatledger.runtime._messages import coerce_messages, message_from_role
from chatledger.runtime._runnable import Runnable

__all__ = ["ChatPromptTemplate", "ChatPromptValue", "MessagesPlaceholder"]

_ROLES = ("system", "human", "user", "ai", "assistant")


def _variables(template: str) -> list[str]:
    """The ``{name}`` fields of a ``str.format`` template, in order, each once."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise InvalidInputError(f"bad prompt template {template!r}: {e}") from e
    for _, field, _, _ in parsed:
        if field is None:
            continue
        name = field.split(".")[0].split("[")[0]
        if not name or name.isdigit():
            raise InvalidInputError(
                f"prompt template {template!r} has a positional field; name every variable"
            )
        if name not in names:
            names.append(name)
    return names


class ChatPromptValue:
    """The messages a prompt formatted to; chat models accept it as input."""

    __slots__ = ("messages",)

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages: tuple[Message, ...] = tuple(messages)

    def __repr__(self) -> str:
        return f"ChatPromptValue(messages={list(self.messages)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatPromptValue) and self.messages == other.messages

    def to_messages(self) -> list[Message]:
        """The messages, as a new list."""
        return list(self.messages)

    def to_string(self) -> str:
        """The messages as ``Role: text`` lines."""
        return get_buffer_string(self.messages)


class MessagesPlaceholder:
    """A slot in a prompt filled with a list of messages from one input variable.

    Args:
        variable_name: The input variable holding the messages.
        optional: When true, a missing variable means no messages instead of an error.
        n_messages: Keep only the last ``n_messages`` messages.

    Raises:
        InvalidInputError: An empty variable name or a non-positive ``n_messages``.
    """

    __slots__ = ("n_messages", "optional", "variable_name")

    def __init__(
        self, variable_name: str, *, optional: bool = False, n_messages: int | None = None
    ) -> None:
        if not isinstance(variable_name, str) or not variable_name:
            raise InvalidInputError("MessagesPlaceholder needs a non-empty variable_name")
        if n_messages is not None and (not isinstance(n_messages, int) or n_messages < 1):
            raise InvalidInputError(f"n_messages must be a positive int, got {n_messages!r}")
        self.variable_name = variable_name
        self.optional = optional
        self.n_messages = n_messages

    def __repr__(self) -> str:
        return f"MessagesPlaceholder(variable_name={self.variable_name!r}, optional={self.optional})"

    def format_messages(self, values: Mapping[str, Any]) -> list[Message]:
        """The messages held by the variable.

        Raises:
            InvalidInputError: The variable is missing (and not optional) or is not a list of
                messages.
        """
        if self.variable_name not in values:
            if self.optional:
                return []
            raise InvalidInputError(
                f"prompt variable {self.variable_name!r} is missing; MessagesPlaceholder needs "
                "a list of messages under that key"
            )
        value = values[self.variable_name]
        if isinstance(value, (str, Message)) or not isinstance(value, Sequence):
            raise InvalidInputError(
                f"prompt variable {self.variable_name!r} must be a list of messages, "
                f"got {type(value).__name__}"
            )
        messages = coerce_messages(value)
        return messages[-self.n_messages:] if self.n_messages else messages


class _MessageTemplate:
    __slots__ = ("role", "template", "variables")

    def __init__(self, role: str, template: str) -> None:
        self.role = role
        self.template = template
        self.variables = _variables(template)

    def format_messages(self, values: Mapping[str, Any]) -> list[Message]:
        return [message_from_role(self.role, self.template.format(**values))]


_Part = _MessageTemplate | MessagesPlaceholder | Message


def _part(item: Any, index: int) -> _Part:
    if isinstance(item, (MessagesPlaceholder, Message)):
        return item
    if isinstance(item, str):
        return _MessageTemplate("human", item)
    if isinstance(item, tuple) and len(item) == 2:
        role, template = item
        if role == "placeholder":
            if not isinstance(template, str):
                raise InvalidInputError(f"prompt part {index}: placeholder needs '{{name}}'")
            names = _variables(template)
            if len(names) != 1 or template.strip() != "{" + names[0] + "}":
                raise InvalidInputError(
                    f"prompt part {index}: a placeholder is written ('placeholder', '{{name}}'), "
                    f"got {template!r}"
                )
            return MessagesPlaceholder(names[0], optional=True)
        if role not in _ROLES:
            raise InvalidInputError(
                f"prompt part {index} has role {role!r}; use one of 'human', 'user', 'ai', "
                "'assistant', 'system' or 'placeholder'"
            )
        if not isinstance(template, str):
            raise InvalidInputError(
                f"prompt part {index}: the template must be a string, got "
                f"{type(template).__name__}"
            )
        return _MessageTemplate(role, template)
    raise InvalidInputError(
        f"prompt part {index} is a {type(item).__name__}; expected a (role, template) pair, "
        "a string, a message or a MessagesPlaceholder"
    )


class ChatPromptTemplate(Runnable[Any, ChatPromptValue]):
    """A prompt of message templates; invoking it with a dict of variables gives messages.

    Templates use ``str.format`` fields (``{language}``; ``{{`` for a literal brace).
    A missing variable raises ``InvalidInputError`` naming every missing variable.

    Args:
        messages: ``(role, template)`` pairs (role one of system, human, user, ai, assistant,
            placeholder), strings (human templates), messages (used as they are) and
            ``MessagesPlaceholder`` slots.

    Raises:
        InvalidInputError: A part that is none of these, or an unknown role.
    """

    def __init__(self, messages: Sequence[Any]) -> None:
        if isinstance(messages, (str, tuple)) or not isinstance(messages, Sequence):
            raise InvalidInputError("ChatPromptTemplate takes a list of message templates")
        self.messages: tuple[_Part, ...] = tuple(_part(m, i) for i, m in enumerate(messages))
        required: set[str] = set()
        optional: set[str] = set()
        for part in self.messages:
            if isinstance(part, _MessageTemplate):
                required.update(part.variables)
            elif isinstance(part, MessagesPlaceholder):
                (optional if part.optional else required).add(part.variable_name)
        self.input_variables: list[str] = sorted(required)
        self.optional_variables: list[str] = sorted(optional - required)

    @classmethod
    def from_messages(cls, messages: Sequence[Any]) -> ChatPromptTemplate:
        """A prompt from a list of parts (see the class docstring).

        Raises:
            InvalidInputError: A part that cannot be read.
        """
        return cls(messages)

    def __repr__(self) -> str:
        return f"ChatPromptTemplate(input_variables={self.input_variables!r})"

    def format_messages(self, **values: Any) -> list[Message]:
        """The formatted messages.

        Raises:
            InvalidInputError: A variable is missing, or a placeholder's value is not a list of
                messages.
        """
        missing = [name for name in self.input_variables if name not in values]
        if missing:
            raise InvalidInputError(
                f"prompt is missing variables {missing}; expected {self.input_variables}, "
                f"got {sorted(values)}"
            )
        out: list[Message] = []
        for part in self.messages:
            if isinstance(part, Message):
                out.append(part)
            else:
                out.extend(part.format_messages(values))
        return out

    def format_prompt(self, **values: Any) -> ChatPromptValue:
        """The formatted messages as a prompt value."""
        return ChatPromptValue(self.format_messages(**values))

    def invoke(self, input: Any, config: RunnableConfig | None = None) -> ChatPromptValue:
        """Format with a dict of variables (or a bare value when there is one variable).

        Raises:
            InvalidInputError: The input is not a dict, or a variable is missing.
        """
        if not isinstance(input, Mapping):
            names = self.input_variables or self.optional_variables
            if len(names) != 1:
                raise InvalidInputError(
                    f"a prompt with variables {names} takes a dict, got {type(input).__name__}"
                )
            input = {names[0]: input}
        return self.format_prompt(**input)
