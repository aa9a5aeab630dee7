"""The append's shortcuts give what the long ways give: a plain text message skips the
decode-back check only where it must read back equal, ids and salts keep their form, the
time keeps its format, and a turn's history rows are the ones the projection's fold makes."""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    Event,
    FunctionMessage,
    HumanMessage,
    InvalidInputError,
    Message,
    MessageAppended,
    SystemMessage,
    ToolMessage,
    _codec,
)
from chatledger.eventstore._append import prepare
from chatledger.eventstore._projection import (
    InsertRows,
    appended_rows,
    prepared_steps,
    projection_ops,
)
from tests.strategies import EVENTS, MESSAGES, OPT_TEXT, SMALL_EVENTS, TEXT

SETTINGS = settings(max_examples=75, deadline=None)

TEXT_MESSAGES = st.one_of(
    st.builds(cls, content=TEXT, name=OPT_TEXT, id=OPT_TEXT)
    for cls in (HumanMessage, AIMessage, SystemMessage)
)


@SETTINGS
@given(TEXT_MESSAGES)
def test_a_plain_text_message_reads_back_equal_without_the_check(message: Any) -> None:
    """Every message the shortcut accepts decodes back equal, as the full check would prove."""
    event = MessageAppended(message=message)
    assert _codec._plain_text(event)
    data = _codec.encode_event(event)
    assert _codec.decode_event("message_appended", data) == event


def test_the_shortcut_knows_every_field_of_the_messages_it_accepts() -> None:
    """A field added to a text message type must be added to the shortcut's checks too."""
    common = {"content", "additional_kwargs", "response_metadata", "name", "id"}
    expected = {HumanMessage: common, SystemMessage: common,
                AIMessage: common | {"tool_calls", "invalid_tool_calls", "usage_metadata"}}
    assert set(_codec._TEXT_MESSAGES) == set(expected)
    for cls, fields in expected.items():
        assert set(cls.__struct_fields__) == fields, cls
    # nor may their decoding check more than the shortcut does (FunctionMessage needs a name)
    assert HumanMessage.__post_init__ is SystemMessage.__post_init__ is Message.__post_init__
    assert AIMessage.__post_init__.__qualname__ == "AIMessage.__post_init__"


class Shout(HumanMessage, tag="shout"):
    """A message type the codec's union does not know."""


@pytest.mark.parametrize("event", [
    MessageAppended(message=HumanMessage("x", additional_kwargs={"k": 1})),
    MessageAppended(message=HumanMessage("x", additional_kwargs=OrderedDict())),
    MessageAppended(message=HumanMessage("x", response_metadata={"model": "m"})),
    MessageAppended(message=HumanMessage(["block"])),
    MessageAppended(message=AIMessage("x", tool_calls=[{"name": "f", "args": {}}])),
    MessageAppended(message=AIMessage("x", usage_metadata={"input_tokens": 1})),
    MessageAppended(message=ToolMessage("x", tool_call_id="1")),
    MessageAppended(message=ChatMessage("x", role="r")),
    MessageAppended(message=FunctionMessage("x", name="f")),
    MessageAppended(message=Shout("x")),
])
def test_anything_else_takes_the_decode_back_check(event: Event) -> None:
    """Fields off their defaults, other message types and subclasses are decoded back."""
    assert not _codec._plain_text(event)


def unnamed_function_message() -> FunctionMessage:
    """A FunctionMessage whose name was taken away after it was made (messages are mutable):
    it would not decode."""
    message = FunctionMessage("x", name="f")
    message.name = None
    return message


@pytest.mark.parametrize("message", [
    Shout("a subclass the decoder would not make"),
    AIMessage("x", usage_metadata=[]),  # type: ignore[arg-type]
    HumanMessage("x", additional_kwargs={"score": float("nan")}),
    unnamed_function_message(),
])
def test_what_would_not_read_back_is_still_refused(message: Any) -> None:
    """The full check still refuses, naming the event, what the shortcut leaves to it."""
    with pytest.raises(InvalidInputError, match="MessageAppended"):
        _codec.encode_event(MessageAppended(message=message))


def test_ids_are_uuid7_and_salts_are_16_random_bytes() -> None:
    """One random read still gives distinct canonical UUIDv7 ids (in millisecond order) and
    32-digit hex salts."""
    pairs = [*_codec.new_ids_and_salts(500), (_codec.new_event_id(), _codec.new_salt())]
    ids = [i for i, _ in pairs]
    salts = [s for _, s in pairs]
    assert len(set(ids)) == len(ids) and len(set(salts)) == len(salts)
    for eid in ids:
        u = uuid.UUID(eid)
        assert (str(u), u.version, u.variant) == (eid, 7, uuid.RFC_4122)
    assert ids[0][:13] <= ids[-1][:13]
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in salts)
    assert _codec.new_ids_and_salts(0) == []


def test_now_text_is_format_time_of_now() -> None:
    """The time of an append has format_time's fixed-width UTC form."""
    text = _codec.now_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert _codec.format_time(_codec.parse_time(text)) == text


@SETTINGS
@given(st.lists(SMALL_EVENTS | EVENTS.filter(lambda e: e.__struct_config__.tag
                                             != "message_redacted"), max_size=5),
       st.integers(0, 100))
def test_a_turns_rows_are_the_folds_rows(events: list[Event], version: int) -> None:
    """When an append only adds messages, its rows are what projection_ops would insert."""
    try:
        prepared, _ = prepare(events, None, None)
    except InvalidInputError:
        return
    rows = appended_rows("s", prepared, version + 1)
    ops, added = projection_ops("s", prepared_steps(prepared, version + 1))
    if rows is not None:
        assert ops == ([InsertRows(rows)] if rows else [])
        assert added == len(rows)
        for row in rows:
            msgspec.json.decode(row[3])
    else:
        assert any(p.type != "message_appended" for p in prepared)


@SETTINGS
@given(st.lists(st.builds(MessageAppended, message=MESSAGES), min_size=1, max_size=3))
def test_messages_of_any_kind_make_the_folds_rows(events: list[Event]) -> None:
    """Messages of every type and shape give the rows of the fold."""
    prepared, _ = prepare(events, None, None)
    rows = appended_rows("s", prepared, 1)
    ops, _ = projection_ops("s", prepared_steps(prepared, 1))
    assert rows is not None and ops == [InsertRows(rows)]
