"""LangChain messages survive LangChain -> chatledger log -> LangChain unchanged."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_chunk_to_message,
)

from chatledger.eventstore import EventStore, open_store
from chatledger.runtime.langchain import (
    ChatledgerMessageHistory,
    from_langchain_message,
    to_langchain_message,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.deprecation.LangChainDeprecationWarning"
)

_counter = itertools.count()

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
keys = st.text("abcdefghij_", min_size=1, max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
           | st.floats(allow_nan=False, allow_infinity=False) | text)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
json_dicts = st.dictionaries(keys, json_values, max_size=3)
blocks = st.one_of(
    text,
    st.builds(lambda t: {"type": "text", "text": t}, text),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, text),
)
contents = text | st.lists(blocks, max_size=3)
ids = st.none() | text
names = st.none() | text
common = {"content": contents, "id": ids, "name": names, "additional_kwargs": json_dicts,
          "response_metadata": json_dicts}

tool_calls = st.lists(st.fixed_dictionaries(
    {"name": text, "args": json_dicts, "id": ids}), max_size=2)
invalid_tool_calls = st.lists(st.fixed_dictionaries({
    "type": st.just("invalid_tool_call"), "id": ids, "name": names,
    "args": st.none() | text, "error": st.none() | text,
}), max_size=1)


@st.composite
def usages(draw: st.DrawFn) -> dict[str, Any] | None:
    """LangChain UsageMetadata, sometimes with token details, or None."""
    if draw(st.booleans()):
        return None
    i, o = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    usage: dict[str, Any] = {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
    if draw(st.booleans()):
        usage["input_token_details"] = {"cache_read": draw(st.integers(0, i))}
    if draw(st.booleans()):
        usage["output_token_details"] = {"reasoning": draw(st.integers(0, o))}
    return usage


lc_messages: st.SearchStrategy[BaseMessage] = st.one_of(
    st.builds(HumanMessage, **common),
    st.builds(SystemMessage, **common),
    st.builds(AIMessage, **common, tool_calls=tool_calls, invalid_tool_calls=invalid_tool_calls,
              usage_metadata=usages()),
    st.builds(ToolMessage, **common, tool_call_id=text, artifact=json_values,
              status=st.sampled_from(["success", "error"])),
    st.builds(ChatMessage, **common, role=st.text("abcdefghij", min_size=1, max_size=8)),
    st.builds(FunctionMessage, content=contents, id=ids, name=st.text(min_size=1, max_size=8),
              additional_kwargs=json_dicts),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """One SQLite file for the module; each example writes its own session."""
    path: Path = tmp_path_factory.mktemp("roundtrip") / "log.db"
    s = open_store(f"sqlite:///{path}")
    yield s
    s.close()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(lc_messages, min_size=1, max_size=4))
def test_messages_round_trip_through_the_log(store: EventStore,
                                             messages: list[BaseMessage]) -> None:
    """Generated LangChain messages read back from the SQLite log equal to what was saved."""
    history = ChatledgerMessageHistory(f"rt-{next(_counter)}", store)
    history.add_messages(messages)
    assert history.messages == messages
    assert [to_langchain_message(from_langchain_message(m)) for m in messages] == messages


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.tuples(text, st.none() | text), min_size=1, max_size=4),
       usage=usages())
def test_chunk_sums_are_saved_as_whole_messages(
    store: EventStore, pieces: list[tuple[str, str | None]], usage: dict[str, Any] | None
) -> None:
    """A summed LangChain AIMessageChunk is stored and read back as the AIMessage it adds up to."""
    chunks = [
        AIMessageChunk(content=t, id="run-1", tool_call_chunks=[
            {"name": "f" if i == 0 else None, "args": a, "id": "c1" if i == 0 else None,
             "index": 0}] if a is not None else [])
        for i, (t, a) in enumerate(pieces)
    ]
    chunks.append(AIMessageChunk(content="", usage_metadata=usage, chunk_position="last"))
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    history = ChatledgerMessageHistory(f"chunk-{next(_counter)}", store)
    history.add_message(total)
    [saved] = history.messages
    assert type(saved) is AIMessage
    assert saved == message_chunk_to_message(total)
