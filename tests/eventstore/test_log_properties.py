"""Property tests: codec and conversion round trips, and the log's invariants under any sequence."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chatledger.eventstore import (
    AIMessage,
    ConcurrencyError,
    Event,
    EventStore,
    Message,
    SessionKey,
    _codec,
    from_langchain_dict,
    from_openai,
    to_langchain_dict,
    to_openai,
)
from tests.pgsupport import postgres_url
from tests.stores import BACKENDS, fresh_store
from tests.strategies import EVENTS, KEYS, MESSAGES, OPENAI_MESSAGES, SMALL_EVENTS

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


# What OpenAI sends and accepts, with the fields beyond role and content that providers add.
_OPENAI_ITEMS = [
    {"role": "developer", "content": "Be brief."},
    {"role": "system", "content": "Be brief.", "name": "policy"},
    {"role": "user", "content": [{"type": "text", "text": "hi"},
                                 {"type": "image_url", "image_url": {"url": "data:,"}}]},
    {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    {"role": "assistant", "content": "4", "reasoning_content": "2+2=4"},
    {"role": "assistant", "content": None, "audio": {"id": "audio_1"}},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"},
         "index": 0}], "annotations": []},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{city: Paris"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "[1]"}}]},
    {"role": "tool", "content": "2", "tool_call_id": "c1"},
    {"role": "user", "content": "hi", "x_provider_field": {"nested": [1, 2]}},
]


@pytest.mark.parametrize("item", _OPENAI_ITEMS, ids=lambda item: str(item)[:60])
def test_openai_items_round_trip(item: dict[str, Any]) -> None:
    """An OpenAI message comes back from a message exactly: the developer role, a refusal,
    reasoning, audio, the tool calls' argument bytes and unknown fields are not dropped."""
    message = from_openai(item)
    assert to_openai(message) == item
    stored = _codec.decode_json(_codec.encode(message))  # through the log's encoding too
    assert to_openai(msgspec.convert(stored, type(message))) == item


def test_openai_invalid_tool_calls_are_kept_and_sent_back() -> None:
    """Arguments that are not a JSON object make an invalid tool call (as in LangChain), which
    goes back to the model with its text, so the tool result after it still answers a call."""
    message = from_openai({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{city: Paris"}}]})
    assert isinstance(message, AIMessage) and message.tool_calls == []
    assert [(c["id"], c["args"]) for c in message.invalid_tool_calls] == [("c1", "{city: Paris")]
    built = AIMessage("", invalid_tool_calls=message.invalid_tool_calls)  # no raw calls kept
    assert to_openai(built) == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{city: Paris"}}]}


def test_openai_tool_calls_follow_an_edited_message() -> None:
    """Raw tool calls go back only while they match the message's calls: an edited call is
    converted as edited."""
    item = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}]}
    message = from_openai(item)
    edited = msgspec.structs.replace(message, tool_calls=[
        {"name": "sub", "args": {"b": 2}, "id": "c2", "type": "tool_call"}])
    assert to_openai(edited)["tool_calls"] == [
        {"id": "c2", "type": "function", "function": {"name": "sub", "arguments": '{"b": 2}'}}]


# -- the log under any sequence of appends ----------------------------------------------------

class LogMachine(RuleBasedStateMachine):
    """Appends to several keys, checked against a plain list-of-events model."""

    store: EventStore
    model: dict[SessionKey, list[Event]]
    ids: dict[SessionKey, list[str]]
    appended = Bundle("appended")

    kind = "sqlite-memory"

    @initialize()
    def open(self) -> None:
        """A fresh store of the machine's backend per example."""
        self._opened = fresh_store(self.kind)
        self.store = self._opened.__enter__()
        self.model = {k: [] for k in KEYS}
        self.ids = {k: [] for k in KEYS}

    def teardown(self) -> None:
        """Close and remove the example's store."""
        if hasattr(self, "store"):
            self._opened.__exit__(None, None, None)

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


def _machine(kind: str) -> type[RuleBasedStateMachine]:
    return type(f"LogMachine_{kind.replace('-', '_')}", (LogMachine,), {"kind": kind})


MACHINE_SETTINGS = settings(max_examples=40, stateful_step_count=12, deadline=None)
# PostgreSQL examples each create and drop a schema: fewer of them, same rules.
PG_MACHINE_SETTINGS = settings(max_examples=15, stateful_step_count=12, deadline=None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_invariants(backend: str) -> None:
    """Any sequence of appends, stale appends and retries keeps the log's invariants, on every
    backend."""
    if backend == "postgres":
        postgres_url()  # skips (fails under CI=true) without a server
    run_state_machine_as_test(_machine(backend), settings=PG_MACHINE_SETTINGS
                              if backend == "postgres" else MACHINE_SETTINGS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_after_append_returns_the_same_events(backend: str) -> None:
    """After any sequence of appends, read returns each key's events in order, versions 1..n,
    and positions strictly increase, on every backend."""
    if backend == "postgres":
        postgres_url()

    @settings(max_examples=15 if backend == "postgres" else 50, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(KEYS),
                              st.lists(SMALL_EVENTS, min_size=1, max_size=3)), max_size=8))
    def check(batches: list[tuple[SessionKey, list[Event]]]) -> None:
        with fresh_store(backend) as store:
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

    check()
