"""Property tests: codec and conversion round trips, and the log's invariants under any sequence."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    ConcurrencyError,
    Event,
    EventStore,
    FunctionMessage,
    HistoryCleared,
    HumanMessage,
    Message,
    MessageAppended,
    MessageRedacted,
    RunRecorded,
    SessionForked,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
    _codec,
    from_langchain_dict,
    from_openai,
    open_store,
    to_langchain_dict,
    to_openai,
)

# -- strategies -------------------------------------------------------------------------------

TEXT = st.text(max_size=30)  # any Unicode scalar value, quotes and escapes included
SHORT = st.text(min_size=1, max_size=12)
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
              history_version=st.integers(0, 1000), model=st.none() | SHORT,
              latency_ms=st.floats(0, 1e6), error=st.none() | TEXT),
    st.builds(SessionTagged, added=st.lists(SHORT, max_size=3),
              removed=st.lists(SHORT, max_size=3)),
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

SETTINGS = settings(max_examples=75, deadline=None)


# -- codec and conversions --------------------------------------------------------------------


@SETTINGS
@given(EVENTS)
def test_event_codec_round_trip(event: Event) -> None:
    """decode_event(tag, encode_event(e)) == e for every kind of event."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    data = _codec.encode_event(event)
    assert _codec.decode_event(tag, data) == event
    assert _codec.decode_event(tag, data.decode()) == event


@SETTINGS
@given(st.lists(MESSAGES, max_size=4))
def test_message_list_codec_round_trip(messages: list[Message]) -> None:
    """A mixed list of messages encodes to JSON and decodes to the same classes and fields."""
    back = _codec.decode_messages(_codec.encode(messages))
    assert back == messages
    assert [type(m) for m in back] == [type(m) for m in messages]


@SETTINGS
@given(MESSAGES)
def test_langchain_dict_round_trip(message: Message) -> None:
    """from_langchain_dict(to_langchain_dict(m)) == m, through plain JSON too."""
    as_dict = to_langchain_dict(message)
    assert as_dict["type"] == message.type
    assert from_langchain_dict(as_dict) == message
    through_json = _codec.decode_json(_codec.encode(as_dict))
    assert from_langchain_dict(through_json) == message


@settings(max_examples=40, deadline=None)
@given(MESSAGES)
def test_langchain_core_objects_round_trip(message: Message) -> None:
    """A message survives a trip through langchain_core's own message classes."""
    messages = pytest.importorskip("langchain_core.messages")
    lc = messages.messages_from_dict([to_langchain_dict(message)])[0]
    assert from_langchain_dict(messages.message_to_dict(lc)) == message


@SETTINGS
@given(OPENAI_MESSAGES)
def test_openai_round_trip(message: Message) -> None:
    """Messages that only use what OpenAI's format carries round-trip through it exactly."""
    as_openai = to_openai(message)
    assert from_openai(as_openai) == message
    assert from_openai(_codec.decode_json(_codec.encode(as_openai))) == message


# -- the log under any sequence of appends ----------------------------------------------------

KEYS = [
    SessionKey(user_id="u1", conversation_id="1"),
    SessionKey(user_id="u1", conversation_id="10"),
    SessionKey(session_id="u1/conversation_id=1"),
]
SMALL_EVENTS = st.one_of(
    st.builds(MessageAppended, message=st.builds(HumanMessage, content=TEXT)),
    st.builds(MessageAppended, message=st.builds(AIMessage, content=TEXT)),
    st.builds(HistoryCleared),
    st.builds(SessionTagged, added=st.lists(SHORT, max_size=2)),
)


class LogMachine(RuleBasedStateMachine):
    """Appends to several keys, checked against a plain list-of-events model."""

    store: EventStore
    model: dict[SessionKey, list[Event]]
    ids: dict[SessionKey, list[str]]
    appended = Bundle("appended")

    @initialize()
    def open(self) -> None:
        """A fresh in-memory store per example."""
        self.store = open_store("sqlite://:memory:")
        self.model = {k: [] for k in KEYS}
        self.ids = {k: [] for k in KEYS}

    def teardown(self) -> None:
        """Close the example's store."""
        if hasattr(self, "store"):
            self.store.close()

    @rule(target=appended, key=st.sampled_from(KEYS),
          events=st.lists(SMALL_EVENTS, min_size=1, max_size=4), conditional=st.booleans())
    def append(self, key: SessionKey, events: list[Event], conditional: bool) -> Any:
        """An append with the right (or no) expected_version lands at the end of the stream."""
        ids = [str(uuid.uuid4()) for _ in events]
        expected = len(self.model[key]) if conditional else None
        before = self.store.last_position()
        result = self.store.append(key, events, expected_version=expected, event_ids=ids)
        assert result.version == len(self.model[key]) + len(events)
        assert result.duplicate is False
        assert result.positions == sorted(set(result.positions))
        assert result.positions[0] > before
        self.model[key] += events
        self.ids[key] += ids
        return key, events, ids, result

    @rule(key=st.sampled_from(KEYS), events=st.lists(SMALL_EVENTS, min_size=1, max_size=3),
          offset=st.integers(min_value=1, max_value=5), below=st.booleans())
    def stale_append(self, key: SessionKey, events: list[Event], offset: int,
                     below: bool) -> None:
        """A wrong expected_version raises ConcurrencyError and changes nothing."""
        current = len(self.model[key])
        wrong = current - offset if below else current + offset
        if wrong < 0:
            wrong = current + offset
        before = (self.store.read_all(), self.store.last_position(), self.store.version(key))
        with pytest.raises(ConcurrencyError):
            self.store.append(key, events, expected_version=wrong)
        assert (self.store.read_all(), self.store.last_position(),
                self.store.version(key)) == before

    @rule(earlier=appended)
    def retry(self, earlier: Any) -> None:
        """Re-sending an earlier append with its ids is a no-op returning the original result."""
        key, events, ids, original = earlier
        before = self.store.last_position()
        again = self.store.append(key, events, event_ids=ids)
        assert again.duplicate is True
        assert (again.version, again.positions) == (original.version, original.positions)
        assert self.store.last_position() == before

    @invariant()
    def streams_match_the_model(self) -> None:
        """Each stream reads back its events in order, with versions 1..n and its ids."""
        for key in KEYS:
            records = self.store.read(key)
            assert [r.event for r in records] == self.model[key]
            assert [r.version for r in records] == list(range(1, len(self.model[key]) + 1))
            assert [r.event_id for r in records] == self.ids[key]
            assert self.store.version(key) == len(self.model[key])

    @invariant()
    def positions_strictly_increase(self) -> None:
        """read_all is in strictly increasing position order and holds every event once."""
        everything = self.store.read_all()
        positions = [r.position for r in everything]
        assert all(a < b for a, b in itertools.pairwise(positions))
        assert len(everything) == sum(len(v) for v in self.model.values())
        assert self.store.last_position() == (positions[-1] if positions else 0)
        for key in KEYS:
            mine = [r.position for r in everything if r.stream_id == key.stream_id]
            assert mine == [r.position for r in self.store.read(key)]


LogMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
test_log_invariants = LogMachine.TestCase
test_log_invariants.__doc__ = "Any sequence of appends, stale appends and retries keeps the log's invariants."


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.lists(SMALL_EVENTS, min_size=1, max_size=3)),
                max_size=8))
def test_read_after_append_returns_the_same_events(
    batches: list[tuple[SessionKey, list[Event]]],
) -> None:
    """After any sequence of appends, read returns each key's events in order, versions 1..n."""
    with open_store("sqlite://:memory:") as store:
        model: dict[SessionKey, list[Event]] = {k: [] for k in KEYS}
        for key, events in batches:
            store.append(key, events, expected_version=len(model[key]))
            model[key] += events
        for key in KEYS:
            records = store.read(key)
            assert [r.event for r in records] == model[key]
            assert [r.version for r in records] == list(range(1, len(model[key]) + 1))
        positions = [r.position for r in store.read_all()]
        assert positions == sorted(set(positions))
