"""OpenAIChatModel inside RunnableWithMessageHistory over ChatHistory, against a local server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from chatledger import runtime
from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    EventStore,
    HumanMessage,
    MessageAppended,
    RunRecorded,
    open_store,
)
from chatledger.projections import ChatHistory
from chatledger.runtime.models import OpenAIChatModel
from chatledger.runtime.models._errors import ModelResponseError, ModelServerError
from tests.runtime.openai_server import OpenAIServer, Reply, completion, running, text_stream

RunnableWithMessageHistory: Any = getattr(runtime, "RunnableWithMessageHistory", None)
if RunnableWithMessageHistory is None:
    pytest.skip("runtime does not export RunnableWithMessageHistory yet", allow_module_level=True)

KEY = "sk-history-SECRET-424242424242"
USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


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


def _chain(server: OpenAIServer, store: EventStore, **options: Any) -> Any:
    model = OpenAIChatModel("served-model", base_url=server.base_url, api_key=KEY, **options)
    return RunnableWithMessageHistory(model, lambda session_id: ChatHistory(session_id, store))


CFG = {"configurable": {"session_id": "s1"}}


def _runs(store: EventStore) -> list[RunRecorded]:
    return [r.event for r in store.read("s1") if isinstance(r.event, RunRecorded)]


def test_turns_are_saved_and_the_model_sees_the_history(
    server: OpenAIServer, store: EventStore
) -> None:
    """Each turn saves input + reply; the second request carries the first turn's messages."""
    server.script(Reply(body=completion("Hi Bob!", id="chatcmpl-a")),
                  Reply(body=completion("You are Bob.", id="chatcmpl-b")))
    chain = _chain(server, store)
    chain.invoke([HumanMessage(content="hi, im bob")], CFG)
    reply = chain.invoke([HumanMessage(content="whats my name?")], CFG)
    assert reply.content == "You are Bob." and reply.id == "chatcmpl-b"
    assert [m["content"] for m in server.requests[1].body["messages"]] == [
        "hi, im bob", "Hi Bob!", "whats my name?"
    ]
    history = ChatHistory("s1", store).messages
    assert [m.text for m in history] == ["hi, im bob", "Hi Bob!", "whats my name?", "You are Bob."]
    assert isinstance(history[1], AIMessage)
    assert history[1].usage_metadata == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
    runs = _runs(store)
    assert [(r.status, r.model) for r in runs] == [("ok", "served-model")] * 2


def test_failed_call_is_a_failed_run_with_no_half_turn(
    server: OpenAIServer, store: EventStore
) -> None:
    """A call that fails after its retries adds no message, only a RunRecorded with the error."""
    server.script(Reply(body=completion("first")),
                  default=Reply(status=503, body={"error": {"message": "overloaded"}},
                                headers={"Retry-After": "0"}))
    chain = _chain(server, store, max_retries=1)
    chain.invoke([HumanMessage(content="one")], CFG)
    with pytest.raises(ModelServerError):
        chain.invoke([HumanMessage(content="two")], CFG)
    assert [m.text for m in ChatHistory("s1", store).messages] == ["one", "first"]
    failed = _runs(store)[-1]
    assert failed.status == "error" and failed.output == []
    assert failed.error is not None and "503" in failed.error
    assert server.base_url in failed.error
    assert server.count == 3
    assert all(KEY not in repr(r.event) + repr(r.meta) for r in store.read("s1"))


def test_streamed_reply_is_saved_as_one_ai_message(
    server: OpenAIServer, store: EventStore
) -> None:
    """A streamed reply is yielded in chunks and saved as one whole AIMessage with usage."""
    server.script(Reply(kind="sse", events=text_stream(["Hel", "lo ", "Bob"], usage=USAGE)))
    chain = _chain(server, store)
    chunks = list(chain.stream([HumanMessage(content="hi")], CFG))
    assert len(chunks) > 3 and all(isinstance(c, AIMessageChunk) for c in chunks)
    saved = [r.event.message for r in store.read("s1") if isinstance(r.event, MessageAppended)]
    assert [type(m) for m in saved] == [HumanMessage, AIMessage]
    reply = saved[1]
    assert isinstance(reply, AIMessage)
    assert reply.content == "Hello Bob" and reply.id == "chatcmpl-s1"
    assert reply.usage_metadata == {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}


def test_stream_cut_records_partial_output_only(server: OpenAIServer, store: EventStore) -> None:
    """A stream cut mid-way saves no message; the failed run keeps what had arrived."""
    server.script(Reply(kind="cut", events=text_stream(["Hel", "lo"])[:3]))
    chain = _chain(server, store)
    with pytest.raises(ModelResponseError):
        list(chain.stream([HumanMessage(content="hi")], CFG))
    assert ChatHistory("s1", store).messages == []
    [run] = _runs(store)
    assert run.status == "error" and [m.text for m in run.output] == ["Hello"]


def test_async_turn_through_the_async_client(server: OpenAIServer, store: EventStore) -> None:
    """ainvoke and astream save their turns like the sync path."""
    server.script(Reply(body=completion("async one")),
                  Reply(kind="sse", events=text_stream(["async ", "two"], usage=USAGE)))
    chain = _chain(server, store)

    async def main() -> None:
        await chain.ainvoke([HumanMessage(content="a")], CFG)
        async for _ in chain.astream([HumanMessage(content="b")], CFG):
            pass

    asyncio.run(main())
    assert [m.text for m in ChatHistory("s1", store).messages] == [
        "a", "async one", "b", "async two"
    ]
