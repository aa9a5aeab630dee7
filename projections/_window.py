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
    """The longest suffix of ``messages`` within the limits that holds no orphaned tool result.

    A tool result belongs to the latest AI message before it whose ``tool_calls`` include its
    ``tool_call_id``. When that AI message would fall outside the window (or there is none),
    the window shrinks instead of growing: it starts after that tool result, wherever in the
    window it stands, so the window never exceeds its limits and never holds a result without
    its call. (A suffix that holds an AI message holds the results after it.)

    Raises:
        InvalidInputError: No limit given, or a limit that is not a positive int.
    """
    if last is None and max_tokens is None:
        raise InvalidInputError("window needs last=N or max_tokens=N")
    for name, value in (("last", last), ("max_tokens", max_tokens)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise InvalidInputError(f"window {name} must be a positive int, got {value!r}")
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
    return list(messages[_whole_exchanges_from(messages, start):])


def _whole_exchanges_from(messages: Sequence[Message], start: int) -> int:
    """The first index at or after ``start`` from which no tool result lacks its call."""
    # caller[i]: where the AI message that called tool result i stands (-1: before ``start``,
    # or nowhere). Only calls within the candidate suffix count.
    called_at: dict[str, int] = {}
    caller: dict[int, int] = {}
    for i in range(start, len(messages)):
        message = messages[i]
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id") is not None:
                    called_at[str(call["id"])] = i
        elif isinstance(message, ToolMessage):
            caller[i] = called_at.get(message.tool_call_id, -1)
    # A suffix from s is whole when every tool result in it was called at or after s.
    best = len(messages)
    earliest_call = len(messages)
    for s in range(len(messages) - 1, start - 1, -1):
        if s in caller:
            earliest_call = min(earliest_call, caller[s])
        if earliest_call >= s:
            best = s
    return best
