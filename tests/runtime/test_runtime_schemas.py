"""Runnables describe their input and output like LangChain's: get_input_schema and friends."""

from __future__ import annotations

import sys
from typing import Any

import pydantic
import pytest

from chatledger.eventstore import AIMessage, HumanMessage
from chatledger.runtime import RunnableLambda, RunnablePassthrough
from chatledger.runtime.models import FakeChatModel


def test_generic_runnables_are_subscriptable() -> None:
    """``RunnableLambda[Any, str]`` works as in LangChain and declares the schema's types."""
    to_text = RunnableLambda[Any, str](lambda x: f"<{x}>", name="to_text")
    assert to_text.invoke(3) == "<3>"
    assert to_text.get_output_schema().model_json_schema() == {"title": "to_textOutput",
                                                               "type": "string"}
    assert to_text.input_schema.model_json_schema() == {"title": "to_textInput"}
    assert RunnablePassthrough[int]().invoke(1) == 1


def test_a_chat_model_output_schema_validates_messages() -> None:
    """The schema accepts an AIMessage or its dict form, and rejects anything else."""
    schema = FakeChatModel(["x"]).output_schema
    assert schema.model_json_schema()["title"] == "FakeChatModelOutput"
    assert "content" in schema.model_json_schema()["properties"]
    assert schema.model_validate({"content": "hi"}).root == AIMessage("hi")
    assert schema.model_validate(AIMessage("yo")).root == AIMessage("yo")
    with pytest.raises(pydantic.ValidationError):
        schema.model_validate(42)


def test_without_pydantic_the_schema_is_json_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no pydantic installed, a schema is its JSON Schema dict (from msgspec)."""
    monkeypatch.setitem(sys.modules, "pydantic", None)
    schema = FakeChatModel(["x"]).get_output_schema()
    assert schema["title"] == "FakeChatModelOutput"
    assert schema["type"] == "object" and "content" in schema["properties"]
    assert RunnableLambda[int, str](str, name="s").get_input_schema() == {"title": "sInput",
                                                                         "type": "integer"}


def test_the_wrapper_describes_its_input_like_langchain(db_url: str) -> None:
    """RunnableWithMessageHistory's schemas have LangChain's titles and shapes for each key setup."""
    from chatledger.projections import ChatHistory
    from chatledger.runtime import RunnableWithMessageHistory

    def factory(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, db_url)

    both = RunnableWithMessageHistory(FakeChatModel(["x"]), factory, input_messages_key="input",
                                      history_messages_key="history", output_messages_key="out")
    schema = both.get_input_schema().model_json_schema()
    assert schema["title"] == "RunnableWithChatHistoryInput"
    assert schema["required"] == ["input"] and list(schema["properties"]) == ["input"]
    assert both.get_output_schema().model_json_schema() == {
        "title": "RunnableWithChatHistoryOutput", "type": "object"}
    only_input = RunnableWithMessageHistory(FakeChatModel(["x"]), factory,
                                            input_messages_key="q")
    assert only_input.input_schema.model_json_schema()["properties"]["q"]["type"] == "array"
    bare = RunnableWithMessageHistory(FakeChatModel(["x"]), factory)
    assert bare.input_schema.model_json_schema()["type"] == "array"
    assert bare.input_schema.model_validate([{"type": "human", "content": "hi"}]).root == [
        HumanMessage("hi")]
