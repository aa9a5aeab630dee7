"""Windows over a history: suffixes within their limits that never hold a tool result without
the AI message that called it, whatever stands between the call and its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    Message,
    SystemMessage,
    ToolMessage,
)
from chatledger.projections import ChatHistory, approximate_tokens, window

CALL_IDS = st.sampled_from(["a", "b", "c", "d", ""])
WORDS = st.text(alphabet="xyz ", max_size=12)


def _call(call_id: str) -> dict[str, Any]:
    return {"name": "lookup", "args": {}, "id": call_id}


MESSAGE = st.one_of(
    st.builds(HumanMessage, WORDS),
    st.builds(SystemMessage, WORDS),
    st.builds(AIMessage, WORDS),
    st.builds(lambda text, ids: AIMessage(text, tool_calls=[_call(i) for i in ids]),
              WORDS, st.lists(CALL_IDS, min_size=1, max_size=3)),
    st.builds(lambda text, i: ToolMessage(text, tool_call_id=i), WORDS, CALL_IDS),
    st.builds(lambda text, i: ToolMessage(text, tool_call_id=i), WORDS, CALL_IDS),
)
HISTORY = st.lists(MESSAGE, max_size=25)


def _characters(message: Message) -> int:
    return 1 + len(message.text)


def has_no_orphaned_results(messages: Sequence[Message]) -> bool:
    """Every tool result among ``messages`` has an AI message before it that called its id."""
    for j, message in enumerate(messages):
        if isinstance(message, ToolMessage) and not any(
                isinstance(m, AIMessage) and any(c.get("id") == message.tool_call_id
                                                 for c in m.tool_calls)
                for m in messages[:j]):
            return False
    return True


def expected_window_start(messages: Sequence[Message], *, last: int | None = None,
                          max_tokens: int | None = None,
                          counter: Callable[[Message], int] = approximate_tokens) -> int:
    """Where the longest suffix within the limits and without orphaned results starts
    (searched by brute force)."""
    for start in range(len(messages) + 1):
        suffix = messages[start:]
        if last is not None and len(suffix) > last:
            continue
        if max_tokens is not None and sum(counter(m) for m in suffix) > max_tokens:
            continue
        if has_no_orphaned_results(suffix):
            return start
    raise AssertionError("the empty suffix is always a window")


# -- examples ------------------------------------------------------------------------------
NOTED = [HumanMessage("weather?"), AIMessage("", tool_calls=[_call("z")]),
         SystemMessage("note: tool is slow"), ToolMessage("sunny", tool_call_id="z"),
         AIMessage("It is sunny.")]


def test_a_result_whose_call_falls_outside_is_left_out_wherever_it_stands(
        store: EventStore) -> None:
    """A tool result past the window's first message, whose call fell outside, is not kept:
    the window shrinks to start after it."""
    history = ChatHistory("s", store)
    history.add_messages(NOTED)
    messages = history.messages
    assert history.window(last=3) == messages[-1:]
    assert history.window(last=2) == messages[-1:]
    assert history.window(last=4) == messages[-4:]
    assert history.window(max_tokens=sum(_characters(m) for m in messages[-3:]),
                          counter=_characters) == messages[-1:]
    assert history.window(max_tokens=sum(_characters(m) for m in messages[-4:]),
                          counter=_characters) == messages[-4:]


def test_results_pair_with_their_calls_by_id() -> None:
    """A result answers the AI message that called its id, not merely the last one with calls;
    a result no message called is never in a window."""
    messages: list[Message] = [
        AIMessage("", tool_calls=[_call("a")]), AIMessage("", tool_calls=[_call("b")]),
        ToolMessage("B", tool_call_id="b"), ToolMessage("A", tool_call_id="a"),
        HumanMessage("and?"), ToolMessage("?", tool_call_id="nobody"), AIMessage("done")]
    assert window(messages, last=6) == messages[-1:]
    assert window(messages[:5], last=4) == messages[4:5]
    assert window(messages[:5], last=5) == messages[:5]


# -- properties ----------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(messages=HISTORY, last=st.none() | st.integers(1, 30),
       max_tokens=st.none() | st.integers(1, 120), by_characters=st.booleans())
def test_windows_are_the_longest_whole_suffixes_within_their_limits(
        messages: list[Message], last: int | None, max_tokens: int | None,
        by_characters: bool) -> None:
    """A window is a suffix, within last= and max_tokens=, in which every tool result has its
    calling AI message earlier; and no longer suffix within the limits is."""
    if last is None and max_tokens is None:
        last = 5
    counter = _characters if by_characters else approximate_tokens
    kept = window(messages, last=last, max_tokens=max_tokens, counter=counter)
    start = len(messages) - len(kept)
    assert kept == messages[start:]
    assert last is None or len(kept) <= last
    assert max_tokens is None or sum(counter(m) for m in kept) <= max_tokens
    assert has_no_orphaned_results(kept)
    assert start == expected_window_start(messages, last=last, max_tokens=max_tokens,
                                          counter=counter)
