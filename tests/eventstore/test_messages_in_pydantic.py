"""Messages inside pydantic models: validated and dumped through msgspec, described by it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

pydantic = pytest.importorskip("pydantic")

from chatledger.eventstore import (  # noqa: E402
    AIMessage,
    AnyMessage,
    HumanMessage,
    Message,
    ToolMessage,
)
from chatledger.eventstore._schemas import json_schema  # noqa: E402


class Exchange(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    """A model holding messages the way LangChain users hold ``BaseMessage``."""

    history: Sequence[Message]
    reply: AIMessage | None = None


def test_a_message_field_takes_messages_and_their_dicts() -> None:
    """A message passes as itself; a dict becomes the message its ``type`` names."""
    given = HumanMessage("hi", id="h1")
    model = Exchange(history=[given, {"type": "tool", "content": "4", "tool_call_id": "c"}],
                     reply={"content": "yo"})
    assert model.history[0] is given
    assert model.history[1] == ToolMessage("4", tool_call_id="c")
    assert model.reply == AIMessage("yo")


def test_a_message_field_dumps_and_reloads_as_json() -> None:
    """``model_dump`` gives the messages' dicts; the JSON reloads to equal messages."""
    model = Exchange(history=[HumanMessage("hi")], reply=AIMessage("yo", name="bot"))
    assert model.model_dump(mode="json") == {
        "history": [{"type": "human", "content": "hi"}],
        "reply": {"type": "ai", "content": "yo", "name": "bot"}}
    assert Exchange.model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("bad", [{"type": "nope", "content": "x"}, {"type": "human"}, 42])
def test_anything_else_is_a_validation_error(bad: object) -> None:
    """An unknown type, a missing field or a non-message fails pydantic's validation."""
    with pytest.raises(pydantic.ValidationError, match="not a Message"):
        Exchange(history=[bad])


def test_a_concrete_type_takes_only_its_own_messages() -> None:
    """An ``AIMessage`` field refuses a human message's dict."""
    with pytest.raises(pydantic.ValidationError, match="not a AIMessage"):
        Exchange(history=[], reply={"type": "human", "content": "x"})


def test_the_json_schema_is_msgspecs_with_every_message_type() -> None:
    """``Message`` is described as any of the message types, definitions inlined."""
    items = Exchange.model_json_schema()["properties"]["history"]["items"]
    assert items == json_schema(AnyMessage)
    titles = [branch["title"] for branch in items["anyOf"]]
    assert "HumanMessage" in titles and "ToolMessage" in titles
    assert items["discriminator"] == {"propertyName": "type"}
    assert "$ref" not in str(items)
