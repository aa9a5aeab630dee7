"""OpenAIChatModel against a real local HTTP server speaking Chat Completions."""

from __future__ import annotations

import asyncio
import functools
import json
import operator
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    InvalidInputError,
    SystemMessage,
    ToolMessage,
)
from chatledger.runtime.models import OpenAIChatModel
from chatledger.runtime.models._openai_http import MAX_RETRY_AFTER, Secret, retry_delay
from chatledger.runtime.models._openai_wire import SSEDecoder, request_body
from tests.runtime.openai_server import OpenAIServer, Reply, chunk, completion, running, text_stream

USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    """A scripted Chat Completions server on 127.0.0.1."""
    with running() as s:
        yield s


@pytest.fixture
def model(server: OpenAIServer) -> Iterator[OpenAIChatModel]:
    """A model pointed at the scripted server."""
    m = OpenAIChatModel("test-model", base_url=server.base_url, api_key="sk-test-key-123456")
    yield m
    m.close()


def _sum(chunks: list[AIMessageChunk]) -> AIMessage:
    return functools.reduce(operator.add, chunks).to_message()


def test_completion_becomes_ai_message(server: OpenAIServer) -> None:
    """A reply carries content, the reply id, usage and model/finish metadata."""
    server.script(Reply(body=completion("Hi Bob!", id="chatcmpl-42", usage={
        "prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    })))
    with OpenAIChatModel("test-model", base_url=server.base_url, api_key="sk-x-123456",
                         temperature=0.2, max_tokens=50, stop=["\n\n"]) as m:
        reply = m.invoke("hi")
    assert reply == AIMessage(
        content="Hi Bob!",
        id="chatcmpl-42",
        response_metadata={"model_name": "test-model", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 9, "output_tokens": 3, "total_tokens": 12,
                        "input_token_details": {"cache_read": 4},
                        "output_token_details": {"reasoning": 2}},
    )
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-x-123456"
    assert request.body == {"model": "test-model", "messages": [{"role": "user", "content": "hi"}],
                            "temperature": 0.2, "max_tokens": 50, "stop": ["\n\n"]}


def test_messages_are_sent_in_openai_form(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """Every message type maps to its OpenAI role, with tool calls as JSON-string arguments."""
    server.script(Reply(body=completion("done")))
    model.invoke([
        SystemMessage(content="be brief"),
        HumanMessage(content=["look", {"type": "image_url", "image_url": {"url": "http://x/y"}}],
                     name="alice"),
        AIMessage(content="", tool_calls=[{"name": "search", "args": {"q": "w"}, "id": "c1"}]),
        ToolMessage(content="sunny", tool_call_id="c1"),
        ChatMessage(content="hm", role="critic"),
    ])
    assert server.requests[0].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "alice", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "http://x/y"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "search", "arguments": '{"q": "w"}'}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "critic", "content": "hm"},
    ]


def test_tool_calls_in_a_reply(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """JSON-string arguments become dicts; arguments that are not JSON become invalid_tool_calls."""
    server.script(Reply(body=completion(None, finish_reason="tool_calls", tool_calls=[
        {"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "bad", "arguments": "{oops"}},
    ])))
    reply = model.invoke("weather?")
    assert reply.content == ""
    assert reply.tool_calls == [
        {"name": "weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    [invalid] = reply.invalid_tool_calls
    assert (invalid["id"], invalid["name"], invalid["args"]) == ("call_2", "bad", "{oops")
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_stream_yields_chunks_that_add_up(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """Text arrives piece by piece; the sum is the whole reply with usage from the last chunk."""
    server.script(Reply(kind="sse", events=text_stream(["Hel", "lo", " Bob"], usage=USAGE)))
    chunks = list(model.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.content for c in chunks if c.content] == ["Hel", "lo", " Bob"]
    assert chunks[-1].usage_metadata == {"input_tokens": 11, "output_tokens": 4,
                                         "total_tokens": 15}
    assert sum(c.usage_metadata is not None for c in chunks) == 1
    assert _sum(chunks) == AIMessage(
        content="Hello Bob", id="chatcmpl-s1",
        response_metadata={"model_name": "test-model", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 11, "output_tokens": 4, "total_tokens": 15},
    )
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_fragments_reassemble(
    model: OpenAIChatModel, server: OpenAIServer
) -> None:
    """Argument fragments travel as tool_call_chunks by index and reassemble into tool calls."""
    def call(index: int, args: str, **first: str) -> dict[str, object]:
        fragment: dict[str, object] = {"index": index, "function": {"arguments": args}}
        if first:
            fragment["id"] = first["id"]
            fragment["type"] = "function"
            fragment["function"] = {"name": first["name"], "arguments": args}
        return chunk({"tool_calls": [fragment]})

    server.script(Reply(kind="sse", events=[
        chunk({"role": "assistant", "content": None}),
        call(0, "", id="call_a", name="weather"),
        call(0, '{"ci'),
        call(1, '{"q": ', id="call_b", name="search"),
        call(0, 'ty": "Paris"}'),
        call(1, '"news"}'),
        chunk(finish_reason="tool_calls"),
        chunk(usage=USAGE, choices=False),
        "[DONE]",
    ]))
    chunks = list(model.stream("weather and news?"))
    fragments = [f for c in chunks for f in c.tool_call_chunks]
    assert [f["index"] for f in fragments] == [0, 0, 1, 0, 1]
    assert fragments[0] == {"name": "weather", "args": "", "id": "call_a", "index": 0,
                            "type": "tool_call_chunk"}
    reply = _sum(chunks)
    assert reply.tool_calls == [
        {"name": "weather", "args": {"city": "Paris"}, "id": "call_a", "type": "tool_call"},
        {"name": "search", "args": {"q": "news"}, "id": "call_b", "type": "tool_call"},
    ]
    assert reply.usage_metadata == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_running_usage_totals_count_once(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """A server that repeats running usage totals in every chunk is counted once, by the last."""
    server.script(Reply(kind="sse", events=[
        chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1,
                                       "total_tokens": 6}),
        chunk({"content": "b"}, finish_reason="stop",
              usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        "[DONE]",
    ]))
    reply = _sum(list(model.stream("x")))
    assert reply.content == "ab"
    assert reply.usage_metadata == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}


def test_stream_without_usage_has_none(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """A server that sends no usage gives a reply with usage_metadata None."""
    server.script(Reply(kind="sse", events=text_stream(["ok"])))
    reply = _sum(list(model.stream("x")))
    assert reply.content == "ok" and reply.usage_metadata is None


def test_call_stop_overrides_default_and_extra_body_merges(server: OpenAIServer) -> None:
    """A call's stop list replaces the model's; extra_body fields are sent as given."""
    server.script(Reply(body=completion()), Reply(body=completion()))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with OpenAIChatModel("m", base_url=server.base_url, stop="END",
                         extra_body={"tools": tools, "top_p": 0.5}) as m:
        m.invoke("a")
        m.invoke("b", stop=["STOP"])
    first, second = (r.body for r in server.requests)
    assert first["stop"] == ["END"] and second["stop"] == ["STOP"]
    assert first["tools"] == tools and first["top_p"] == 0.5


def test_sync_client_is_reused_and_reopens_after_close(
    model: OpenAIChatModel, server: OpenAIServer
) -> None:
    """Consecutive calls share one keep-alive connection; close() does not break later calls."""
    server.script(default=Reply(body=completion()))
    model.invoke("a")
    model.invoke("b")
    model.close()
    model.invoke("c")
    ports = [r.client_port for r in server.requests]
    assert ports[0] == ports[1] != ports[2]


def test_async_invoke_and_astream(model: OpenAIChatModel, server: OpenAIServer) -> None:
    """ainvoke and astream speak the same protocol on the async client."""
    server.script(Reply(body=completion("async hi")),
                  Reply(kind="sse", events=text_stream(["a", "b"], usage=USAGE)))

    async def main() -> tuple[AIMessage, list[AIMessageChunk]]:
        reply = await model.ainvoke("hi")
        chunks = [c async for c in model.astream("hi")]
        await model.aclose()
        return reply, chunks

    reply, chunks = asyncio.run(main())
    assert reply.content == "async hi"
    assert _sum(chunks).content == "ab"
    assert _sum(chunks).usage_metadata is not None


def test_async_client_survives_a_new_event_loop(
    model: OpenAIChatModel, server: OpenAIServer
) -> None:
    """Two asyncio.run calls on one model each get a working async client."""
    server.script(default=Reply(body=completion("again")))
    assert asyncio.run(model.ainvoke("1")).content == "again"
    assert asyncio.run(model.ainvoke("2")).content == "again"
    assert server.count == 2


def test_defaults_come_from_the_environment(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_BASE_URL and OPENAI_API_KEY are used when no argument is given."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000")
    server.script(Reply(body=completion()))
    with OpenAIChatModel("m") as m:
        m.invoke("hi")
        assert m.base_url == server.base_url
    assert server.requests[0].headers["Authorization"] == "Bearer sk-from-env-000000"


def test_default_base_url_is_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without argument or environment the model points at api.openai.com/v1."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIChatModel("gpt-4o-mini").base_url == "https://api.openai.com/v1"


def test_no_api_key_sends_no_authorization(server: OpenAIServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Local servers need no key: none given means no Authorization header."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.script(Reply(body=completion()))
    with OpenAIChatModel("m", base_url=server.base_url) as m:
        m.invoke("hi")
    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize("kwargs, match", [
    ({"model": ""}, "model name"),
    ({"model": "m", "base_url": "localhost:8000/v1"}, "http"),
    ({"model": "m", "base_url": "http:///v1"}, "host"),
    ({"model": "m", "timeout": 0}, "timeout"),
    ({"model": "m", "max_retries": -1}, "max_retries"),
    ({"model": "m", "max_tokens": 0}, "max_tokens"),
])
def test_bad_options_raise(kwargs: dict[str, object], match: str) -> None:
    """A bad option raises InvalidInputError naming it."""
    with pytest.raises(InvalidInputError, match=match):
        OpenAIChatModel(**kwargs)  # type: ignore[arg-type]


def test_no_messages_is_invalid_input() -> None:
    """A request needs at least one message."""
    with pytest.raises(InvalidInputError, match="at least one message"):
        request_body("m", [], stream=False)


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    """Data lines join with newlines, comments and other fields are skipped, a tail is flushed."""
    decoder = SSEDecoder()
    lines = [": keep-alive", "event: message", "data: {\"a\":", "data:1}", "", "", "data: [DONE]"]
    out = [d for d in map(decoder.feed, lines) if d is not None]
    assert out == ['{"a":\n1}']
    assert decoder.flush() == "[DONE]" and decoder.flush() is None
    assert json.loads(out[0]) == {"a": 1}


def test_retry_delay_honours_the_server_and_backs_off() -> None:
    """Retry-After (seconds, ms, HTTP date) wins, capped; otherwise jittered doubling."""
    assert retry_delay(0, {"retry-after": "2"}) == 2.0
    assert retry_delay(0, {"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_delay(0, {"retry-after": "3600"}) == MAX_RETRY_AFTER
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 10 < retry_delay(0, {"retry-after": later}) <= 20
    assert retry_delay(0, {"retry-after": "-5"}) == 0.0
    for attempt, base in [(0, 0.5), (1, 1.0), (2, 2.0), (10, 8.0)]:
        assert base * 0.75 <= retry_delay(attempt, {"retry-after": "soon"}) <= base


def test_secret_never_shows_itself() -> None:
    """A Secret's repr and str hide the value, and mask() scrubs it out of text."""
    secret = Secret("sk-very-secret-999")
    assert "sk-very" not in repr(secret) + str(secret)
    assert secret.mask("key sk-very-secret-999 echoed") == "key *** echoed"
    assert Secret(None).mask("text") == "text" and Secret("").get() is None
