"""Hypothesis strategies shared by the property tests of every layer."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    Event,
    FunctionMessage,
    HistoryCleared,
    HumanMessage,
    MessageAppended,
    MessageRedacted,
    MessageRef,
    ModelCalled,
    RunRecorded,
    SessionForked,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
)

__all__ = ["BLOCK", "CONTENT", "EVENTS", "JSON", "JSON_OBJECT", "KEYS", "MESSAGES",
           "OPENAI_MESSAGES", "SHORT", "SMALL_EVENTS", "TEXT"]

TEXT = st.text(max_size=30)  # any Unicode scalar value, quotes and escapes included
SHORT = st.text(min_size=1, max_size=12)
# A tag follows a key part value's rules: no control characters (C0, DEL, C1).
TAG = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=[
    *map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0))]), min_size=1, max_size=12)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)
JSON_OBJECT = st.dictionaries(TEXT, JSON, max_size=3)
BLOCK = st.one_of(
    TEXT,
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, TEXT),
    JSON_OBJECT,
)
CONTENT = st.one_of(TEXT, st.lists(BLOCK, max_size=4))
OPT_TEXT = st.none() | SHORT
TOOL_CALL = st.fixed_dictionaries(
    {"name": SHORT, "args": JSON_OBJECT, "id": OPT_TEXT, "type": st.just("tool_call")}
)
USAGE = st.none() | st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**6),
        "total_tokens": st.integers(0, 2 * 10**6),
    },
    optional={"input_token_details": st.dictionaries(SHORT, st.integers(0, 100), max_size=2)},
)
COMMON: dict[str, Any] = {
    "content": CONTENT,
    "additional_kwargs": JSON_OBJECT,
    "response_metadata": JSON_OBJECT,
    "name": OPT_TEXT,
    "id": OPT_TEXT,
}

MESSAGES = st.one_of(
    st.builds(HumanMessage, **COMMON),
    st.builds(SystemMessage, **COMMON),
    st.builds(AIMessage, **COMMON, tool_calls=st.lists(TOOL_CALL, max_size=3),
              usage_metadata=USAGE),
    st.builds(ToolMessage, **COMMON, tool_call_id=SHORT,
              status=st.sampled_from(["success", "error"]), artifact=JSON),
    st.builds(ChatMessage, **COMMON, role=SHORT),
    st.builds(FunctionMessage, **{**COMMON, "name": SHORT}),
)

EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(MessageAppended, message=MESSAGES),
    st.builds(HistoryCleared, reason=st.none() | TEXT),
    st.builds(MessageRedacted, version=st.integers(1, 10**6), reason=TEXT),
    st.builds(SessionForked, parent=st.dictionaries(SHORT, SHORT, min_size=1, max_size=2),
              parent_version=st.integers(0, 1000), messages=st.lists(MESSAGES, max_size=3)),
    st.builds(RunRecorded, run_id=SHORT, status=st.sampled_from(["ok", "error", "cancelled"]),
              input=st.lists(MESSAGES, max_size=2), output=st.lists(MESSAGES, max_size=2),
              input_versions=st.lists(st.integers(1, 10**6), max_size=2),
              output_versions=st.lists(st.integers(1, 10**6), max_size=2),
              history_version=st.integers(0, 1000), model=st.none() | SHORT,
              latency_ms=st.floats(0, 1e6), error=st.none() | TEXT,
              chain_input=JSON, keys=st.dictionaries(SHORT, SHORT, max_size=3)),
    st.builds(SessionTagged, added=st.lists(TAG, max_size=3),
              removed=st.lists(TAG, max_size=3)),
    st.builds(ModelCalled, run_id=SHORT, index=st.integers(0, 100), provider=SHORT, model=SHORT,
              parameters=JSON_OBJECT,
              request=st.lists(MESSAGES | st.builds(
                  MessageRef, source=st.sampled_from(["history", "input", "output"]),
                  start=st.integers(0, 100), stop=st.integers(0, 100)), max_size=3),
              response=st.none() | MESSAGES, usage=USAGE, finish_reason=st.none() | SHORT,
              response_id=OPT_TEXT, stream=st.booleans(), offset_ms=st.floats(0, 1e6),
              latency_ms=st.floats(0, 1e6), error=st.none() | TEXT),
)

# What OpenAI's chat format carries: role, content, name, tool calls and tool_call_id.
OPENAI_CONTENT = st.one_of(TEXT, st.lists(BLOCK, max_size=3))
OPENAI_TOOL_CALL = st.fixed_dictionaries(
    {"name": SHORT, "args": JSON_OBJECT, "id": OPT_TEXT, "type": st.just("tool_call")}
)
OPENAI_MESSAGES = st.one_of(
    st.builds(HumanMessage, content=OPENAI_CONTENT, name=OPT_TEXT),
    st.builds(SystemMessage, content=OPENAI_CONTENT, name=OPT_TEXT),
    st.builds(AIMessage, content=OPENAI_CONTENT, name=OPT_TEXT,
              tool_calls=st.lists(OPENAI_TOOL_CALL, max_size=3)),
    st.builds(ToolMessage, content=OPENAI_CONTENT, tool_call_id=SHORT, name=OPT_TEXT),
    st.builds(FunctionMessage, content=OPENAI_CONTENT, name=SHORT),
    st.builds(ChatMessage, content=OPENAI_CONTENT, name=OPT_TEXT,
              role=SHORT.filter(lambda r: r not in {
                  "user", "assistant", "system", "developer", "tool", "function"})),
)

# Keys whose parts look alike: canonical stream ids must still keep them apart.
KEYS = [
    SessionKey(user_id="u1", conversation_id="1"),
    SessionKey(user_id="u1", conversation_id="10"),
    SessionKey(session_id="u1/conversation_id=1"),
]
SMALL_EVENTS = st.one_of(
    st.builds(MessageAppended, message=st.builds(HumanMessage, content=TEXT)),
    st.builds(MessageAppended, message=st.builds(AIMessage, content=TEXT)),
    st.builds(HistoryCleared),
    st.builds(SessionTagged, added=st.lists(TAG, max_size=2)),
)
