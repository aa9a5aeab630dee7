"""The fake and offline chat models: replies, streaming, metadata and input coercion."""

from __future__ import annotations

import asyncio

import pytest

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    InvalidInputError,
    SystemMessage,
)
from chatledger.runtime.models import ChatModel, FakeChatModel, OfflineChatModel


def test_fake_cycles_scripted_replies_and_records_calls() -> None:
    """FakeChatModel answers its responses in turn, then starts over, and records its inputs."""
    model = FakeChatModel(["one", "two"])
    replies = [model.invoke(q).content for q in ("a", "b", "c")]
    assert replies == ["one", "two", "one"]
    assert [call[0].content for call in model.calls] == ["a", "b", "c"]


def test_fake_streams_word_chunks_that_add_up() -> None:
    """Streaming yields AIMessageChunk words whose sum is the whole reply with its metadata."""
    chunks = list(FakeChatModel(["hello big world"]).stream("x"))
    assert [c.content for c in chunks] == ["hello ", "big ", "world"]
    assert all(type(c) is AIMessageChunk for c in chunks)
    whole = (chunks[0] + chunks[1] + chunks[2]).to_message()
    assert type(whole) is AIMessage
    assert whole.response_metadata["finish_reason"] == "stop"
    assert whole.usage_metadata is not None and whole.usage_metadata["total_tokens"] > 0


def test_fake_raises_a_scripted_exception() -> None:
    """An exception among the responses is raised when its turn comes."""
    model = FakeChatModel([RuntimeError("boom"), "fine"])
    with pytest.raises(RuntimeError, match="boom"):
        model.invoke("x")
    assert model.invoke("x").content == "fine"


def test_fake_needs_responses() -> None:
    """An empty or malformed response list raises InvalidInputError."""
    with pytest.raises(InvalidInputError):
        FakeChatModel([])
    with pytest.raises(InvalidInputError, match="response 0"):
        FakeChatModel([42])  # type: ignore[list-item]


def test_reply_has_metadata_usage_and_run_id() -> None:
    """Replies carry the model name, finish reason, approximate usage and an id ``run-<uuid>``."""
    reply = OfflineChatModel().invoke("hello")
    assert reply.response_metadata == {"model_name": "offline", "finish_reason": "stop"}
    assert reply.usage_metadata is not None
    usage = reply.usage_metadata
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.id is not None and reply.id.startswith("run-")


@pytest.mark.parametrize("intro", ["hi, I'm bob!", "hi - im bob!", "hi im bob!", "my name is Bob"])
def test_offline_model_learns_the_name_only_from_given_messages(intro: str) -> None:
    """The offline model greets an introduction and recalls the name only when it is in the input."""
    model = OfflineChatModel()
    assert model.invoke(intro).content == "Nice to meet you, Bob!"
    remembered = model.invoke([HumanMessage(intro), AIMessage("hey"), HumanMessage("whats my name?")])
    assert remembered.content == "Your name is Bob."
    assert model.invoke("what's my name?").content == "I'm sorry, I don't know your name."


def test_offline_model_speaks_italian_when_told() -> None:
    """With a system prompt about Italian, replies come in Italian."""
    model = OfflineChatModel()
    system = SystemMessage("You're an assistant who speaks in italian. Respond in 20 words or fewer")
    assert model.invoke([system, HumanMessage("hi im bob!")]).content.startswith("Ciao Bob!")
    assert model.invoke([system, HumanMessage("hi im bob!"), AIMessage("Ciao"),
                         HumanMessage("whats my name?")]).content == "Il tuo nome è Bob."
    assert model.invoke([system, HumanMessage("whats my name?")]).content == (
        "Mi dispiace, non so il tuo nome."
    )


def test_offline_model_echoes_anything_else() -> None:
    """Other input gets a short echo-style answer."""
    assert OfflineChatModel().invoke("What does cosine mean?").content == (
        "You said: What does cosine mean?"
    )


def test_offline_model_streams_and_astreams() -> None:
    """Both stream and astream yield chunks summing to the invoke reply's content."""
    model = OfflineChatModel()
    text = "".join(c.text for c in model.stream("hi im bob!"))

    async def collect() -> str:
        return "".join([c.text async for c in model.astream("hi im bob!")])

    assert text == asyncio.run(collect()) == "Nice to meet you, Bob!"


def test_model_input_coercion() -> None:
    """Models accept a string, a message, (role, text) pairs; other input raises."""
    model = FakeChatModel(["ok"])
    model.invoke(HumanMessage("m"))
    model.invoke([("system", "s"), ("user", "u"), ("assistant", "a")])
    assert [m.type for m in model.calls[1]] == ["system", "human", "ai"]
    with pytest.raises(InvalidInputError, match="int"):
        model.invoke(7)


def test_subclass_needs_only_generate() -> None:
    """A ChatModel subclass with only ``_generate`` streams one chunk and works async."""

    class Echo(ChatModel):
        model_name = "echo"

        def _generate(self, messages: list, *, stop: list[str] | None = None) -> AIMessage:  # type: ignore[type-arg]
            return AIMessage(messages[-1].text)

    echo = Echo()
    assert [c.content for c in echo.stream("x")] == ["x"]
    assert asyncio.run(echo.ainvoke("y")).content == "y"
