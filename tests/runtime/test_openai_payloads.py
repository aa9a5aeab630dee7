"""OpenAIChatModel keeps the provider's assistant message whole and records each call exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chatledger.eventstore import EventStore, ModelCalled, open_store
from chatledger.projections import ChatHistory, recorded_turns, resolve_call
from chatledger.runtime import RunnableWithMessageHistory
from chatledger.runtime.models import OpenAIChatModel
from tests.runtime.openai_server import OpenAIServer, Reply, chunk, completion, running

CFG = {"configurable": {"session_id": "s"}}

# An assistant message with fields chatledger knows nothing about, content blocks, a refusal
# field, and tool-call arguments spaced as no JSON encoder of ours would write them.
ODD_MESSAGE: dict[str, Any] = {
    "role": "assistant",
    "content": [{"type": "text", "text": "Let me look.", "annotations": []},
                {"type": "thinking", "thinking": "user wants weather", "signature": "c2lnbmF0dXJl"}],
    "refusal": None,
    "reasoning_content": "step 1, step 2",
    "encrypted_reasoning": {"id": "rs_1", "encrypted_content": "gAAAAB..."},
    "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{ \"city\" :  \"Rome\" }"}}],
    "provider_specific_fields": {"thought_signature": "AbCd=="},
}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    """A scripted Chat Completions server on 127.0.0.1."""
    with running() as s:
        yield s


@pytest.fixture
def store(tmp_path: Any) -> Iterator[EventStore]:
    """A SQLite store in a fresh file."""
    s = open_store(f"sqlite:///{tmp_path / 'chat.db'}")
    yield s
    s.close()


def _odd_completion() -> dict[str, Any]:
    body = completion("x", finish_reason="tool_calls")
    body["choices"][0]["message"] = ODD_MESSAGE
    return body


def test_second_request_sends_the_first_reply_back_byte_for_byte(
        server: OpenAIServer, store: EventStore) -> None:
    """The assistant message in the next request is the server's message, every field, in order."""
    server.script(Reply(body=_odd_completion()), Reply(body=completion("Sunny.")))
    model = OpenAIChatModel("m", base_url=server.base_url)
    chain = RunnableWithMessageHistory(model, lambda session_id: ChatHistory(session_id, store))
    chain.invoke("weather in Rome?", CFG)
    chain.invoke("and tomorrow?", CFG)
    sent = server.requests[1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert json.dumps(sent[1]) == json.dumps(ODD_MESSAGE)


def test_an_edited_tool_call_is_sent_as_edited(server: OpenAIServer) -> None:
    """Raw tool calls are sent back only while they match the message's tool calls."""
    server.script(Reply(body=_odd_completion()), Reply(body=completion("ok")))
    model = OpenAIChatModel("m", base_url=server.base_url)
    reply = model.invoke("weather?")
    assert reply.tool_calls[0]["args"] == {"city": "Rome"}
    changed = type(reply)(content=reply.content, additional_kwargs=reply.additional_kwargs,
                          tool_calls=[{"name": "weather", "args": {"city": "Oslo"},
                                       "id": "call_2", "type": "tool_call"}])
    model.invoke(["weather?", changed])
    sent = server.requests[1].body["messages"][1]
    assert sent["tool_calls"][0]["id"] == "call_2"
    assert json.loads(sent["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert sent["provider_specific_fields"] == {"thought_signature": "AbCd=="}


def test_openai_call_is_recorded_with_parameters_usage_and_ids(
        server: OpenAIServer, store: EventStore) -> None:
    """The call records provider, parameters (extra_body included), usage, finish and id."""
    server.script(Reply(body=completion("Hi!", id="chatcmpl-42", model="m-2024")))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    model = OpenAIChatModel("m", base_url=server.base_url, temperature=0.3, max_tokens=50,
                            stop=["END"], extra_body={"tools": tools, "tool_choice": "auto"})
    chain = RunnableWithMessageHistory(model, lambda session_id: ChatHistory(session_id, store))
    chain.invoke("hello", CFG)
    [call] = [r.event for r in store.read("s") if isinstance(r.event, ModelCalled)]
    assert (call.provider, call.model) == ("openai", "m")
    assert call.parameters == {"temperature": 0.3, "max_tokens": 50, "stop": ["END"],
                               "tools": tools, "tool_choice": "auto"}
    assert (call.response_id, call.finish_reason) == ("chatcmpl-42", "stop")
    assert call.usage == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
    [turn] = recorded_turns(store.read("s"))
    request, response, _ = resolve_call(call, [], turn)
    assert [m.text for m in request] == ["hello"]
    assert response is not None and response.response_metadata["model_name"] == "m-2024"
    # the request the server got is what was recorded, parameters included
    body = server.requests[0].body
    assert {k: body[k] for k in call.parameters} == call.parameters


def test_streamed_delta_fields_are_kept_whole_and_sent_back(
        server: OpenAIServer, store: EventStore) -> None:
    """Streamed reasoning fragments add up to one field on the saved reply and go back with it."""
    events = [chunk({"role": "assistant", "content": "", "reasoning_content": "think "}),
              chunk({"reasoning_content": "harder", "content": "Hi", "refusal": None}),
              chunk({"thought_signature": "sig=="}),
              chunk({"content": "!"}), chunk(finish_reason="stop"), "[DONE]"]
    server.script(Reply(kind="sse", events=events), Reply(body=completion("ok")))
    model = OpenAIChatModel("m", base_url=server.base_url)
    chain = RunnableWithMessageHistory(model, lambda session_id: ChatHistory(session_id, store))
    assert "".join(c.content for c in chain.stream("hi", CFG)) == "Hi!"
    saved = ChatHistory("s", store).messages[-1]
    assert saved.additional_kwargs == {"reasoning_content": "think harder",
                                       "thought_signature": "sig=="}
    chain.invoke("again", CFG)
    assert server.requests[1].body["messages"][1] == {
        "role": "assistant", "content": "Hi!", "reasoning_content": "think harder",
        "thought_signature": "sig=="}
