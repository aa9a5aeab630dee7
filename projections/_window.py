"""Windows over a history that fit a budget without splitting tool calls from their results."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatledger.eventstore import AIMessage, InvalidInputError, Message, ToolMessage

__all__ = ["approximate_tokens", "window"]


def approximate_tokens(message: Message) -> int:
    """A cheap token estimate: about four characters a token, plus a few for the role."""
    size = len(message.text)
    if isinstance(message, AIMessage):
        size += sum(len(str(call)) for call in message.tool_calls)
    return 4 + (size + 3) // 4


def window(
    messages: Sequence[Message],
    *,
    last: int | None = None,
    max_tokens: int | None = None,
    counter: Callable[[Message], int] | None = None,
) -> list[Message]:
    """The longest suffix of ``messages`` within the limits, starting at a whole tool exchange.

    A suffix always keeps an AI message together with the tool results after it; a tool result
    whose AI message would fall outside the window is dropped rather than sent orphaned, so the
    window never exceeds its budget.

    Raises:
        InvalidInputError: No limit given, or a limit that is not a positive int.
    """
    if last is None and max_tokens is None:
        raise InvalidInputError("window needs last=N or max_tokens=N")
    for name, value in (("last", last), ("max_tokens", max_tokens)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise InvalidInputError(f"window {name} must be a positive int, got {value!r}")
    start = len(messages)
    start = max(0, len(messages) - last) if last is not None else 0
    if max_tokens is not None:
        count = counter or approximate_tokens
        total = 0
        cut = len(messages)
        while cut > start:
            cost = count(messages[cut - 1])
            if total + cost > max_tokens:
                break
            total += cost
            cut -= 1
        start = cut
    while start < len(messages) and isinstance(messages[start], ToolMessage):
        start += 1
    return list(messages[start:])
