"""LangChain runnables inside chatledger's chains and wrapper, messages converted both ways."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from langchain_core import messages as lc
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.runnables import RunnableLambda as LCRunnableLambda
from langchain_core.tools import tool

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    InvalidInputError,
    Message,
    SystemMessage,
    ToolMessage,
)
from chatledger.projections import ChatHistory, recorded_turns
from chatledger.runtime import (
    ChatPromptTemplate,
    MessagesPlaceholder,
    RunnableLambda,
    RunnableSequence,
    RunnableWithMessageHistory,
    coerce_to_runnable,
)
from chatledger.runtime.langchain import LangChainRunnable
from chatledger.runtime.models import FakeChatModel

PROMPT = ChatPromptTemplate.from_messages([("system", "be brief"), ("human", "{input}")])


def fake_model(*replies: str) -> GenericFakeChatModel:
    """LangChain's own fake chat model, replying in order."""
    return GenericFakeChatModel(messages=iter([lc.AIMessage(r) for r in replies]))


def test_prompt_pipes_into_a_langchain_chat_model() -> None:
    """``prompt | GenericFakeChatModel`` runs and returns chatledger's AIMessage."""
    out = (PROMPT | fake_model("hello there")).invoke({"input": "hi"})
    assert isinstance(out, AIMessage) and out.content == "hello there"


def test_a_langchain_model_sees_langchain_messages() -> None:
    """Our messages arrive as LangChain messages, and its reply comes back as ours."""
    seen: list[Any] = []

    def model(prompt: Any) -> lc.AIMessage:
        seen.extend(prompt.to_messages())
        return lc.AIMessage(f"{len(seen)} messages", id="r1")

    out = (PROMPT | LCRunnableLambda(model)).invoke({"input": "hi"})
    assert [type(m) for m in seen] == [lc.SystemMessage, lc.HumanMessage]
    assert out == AIMessage("2 messages", id="r1")


def test_streaming_converts_chunk_by_chunk() -> None:
    """A LangChain model streams chatledger chunks that add up to the reply, sync and async."""
    chunks = list((PROMPT | fake_model("one two three")).stream({"input": "hi"}))
    assert len(chunks) > 1 and all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == "one two three"

    async def collect() -> list[Any]:
        return [c async for c in (PROMPT | fake_model("a b")).astream({"input": "hi"})]

    achunks = asyncio.run(collect())
    assert "".join(str(c.content) for c in achunks) == "a b"
    assert asyncio.run((PROMPT | fake_model("async")).ainvoke({"input": "x"})).content == "async"


def test_langchain_parsers_and_prompts_compose_with_our_models() -> None:
    """Our model into LangChain's StrOutputParser; LangChain's prompt into our model."""
    assert (PROMPT | FakeChatModel(["parsed"]) | StrOutputParser()).invoke({"input": "x"}) == "parsed"
    seen: list[Any] = []
    lc_prompt = LCChatPromptTemplate.from_messages([("system", "sys"), ("human", "{q}")])
    # LangChain's own ``|`` refuses foreign runnables, so a chain that starts with one is
    # started on our side
    chain = RunnableSequence(lc_prompt, RunnableLambda(lambda value: seen.append(value) or "ok"))
    assert chain.invoke({"q": "why"}) == "ok"
    assert seen[0].to_messages() == [SystemMessage("sys"), HumanMessage("why")]


def test_a_langchain_tool_is_invoked_as_a_runnable() -> None:
    """A tool (which is also callable) is bridged, not wrapped as a plain function."""

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(coerce_to_runnable(add), LangChainRunnable)
    assert (RunnableLambda(lambda x: {"a": x, "b": 2}) | add).invoke(1) == 3


def test_a_langchain_model_inside_our_wrapper_saves_our_messages(db_url: str) -> None:
    """Inside RunnableWithMessageHistory a LangChain model's turns are saved as whole messages."""
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder(variable_name="history"), ("human", "{input}")])
    chain = RunnableWithMessageHistory(
        prompt | fake_model("first reply", "second reply"),
        lambda session_id: ChatHistory(session_id, db_url),
        input_messages_key="input", history_messages_key="history")
    config = {"configurable": {"session_id": "s"}}
    chain.invoke({"input": "hi"}, config)
    streamed = list(chain.stream({"input": "again"}, config))
    assert "".join(str(c.content) for c in streamed) == "second reply"
    saved = ChatHistory("s", db_url).messages
    assert [type(m) for m in saved] == [HumanMessage, AIMessage, HumanMessage, AIMessage]
    assert [m.content for m in saved] == ["hi", "first reply", "again", "second reply"]


LC_TOOL_TURN = [lc.HumanMessage("weather?", id="h1"),
                lc.AIMessage("", tool_calls=[{"name": "f", "args": {"c": "P"}, "id": "z"}]),
                lc.ToolMessage("sunny", tool_call_id="z")]


def test_langchain_messages_as_the_wrappers_input_are_saved_as_ours(db_url: str) -> None:
    """LangChain messages given straight to our wrapper (alone, in a list, under a key, on the
    async path) are converted and saved as chatledger's, fields and all."""
    seen: list[Any] = []

    def reply(messages: list[Any]) -> str:
        seen.append(messages)
        return "ok"

    def factory(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, db_url)

    chain = RunnableWithMessageHistory(RunnableLambda(reply), factory)
    chain.invoke(LC_TOOL_TURN, {"session_id": "list"})
    chain.invoke(lc.HumanMessage("alone"), {"session_id": "one"})
    asyncio.run(chain.ainvoke([lc.HumanMessage("async")], {"session_id": "async"}))
    keyed = RunnableWithMessageHistory(RunnableLambda(lambda d: "ok"), factory,
                                       input_messages_key="q")
    keyed.invoke({"q": [lc.HumanMessage("keyed")]}, {"session_id": "keyed"})
    assert ChatHistory("list", db_url).messages == [
        HumanMessage("weather?", id="h1"),
        AIMessage("", tool_calls=[{"name": "f", "args": {"c": "P"}, "id": "z",
                                   "type": "tool_call"}]),
        ToolMessage("sunny", tool_call_id="z"), AIMessage("ok")]
    assert all(isinstance(m, Message) for batch in seen for m in batch)
    for session, text in (("one", "alone"), ("async", "async"), ("keyed", "keyed")):
        assert ChatHistory(session, db_url).messages == [HumanMessage(text), AIMessage("ok")]
    # the run records a single message as a single message, so a replay rebuilds it as one
    (turn,) = recorded_turns(ChatHistory("one", db_url).events())
    assert turn.run.chain_input == {"$input": "message"}


def test_langchain_messages_returned_by_our_runnable_are_saved_as_ours(db_url: str) -> None:
    """A chatledger RunnableLambda that returns LangChain messages (one, a list, a streamed
    chunk) has them saved as chatledger's; the caller still gets what it returned."""
    def factory(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, db_url)

    one = RunnableWithMessageHistory(RunnableLambda(lambda m: lc.AIMessage("x", id="a1")),
                                     factory)
    out = one.invoke("hi", {"session_id": "one"})
    assert isinstance(out, lc.AIMessage)
    many = RunnableWithMessageHistory(
        RunnableLambda(lambda m: [lc.AIMessage("y"), lc.AIMessage("z")]), factory)
    many.invoke("hi", {"session_id": "many"})

    def chunks(messages: Any) -> Any:
        yield lc.AIMessageChunk("stre")
        yield lc.AIMessageChunk("amed")

    list(RunnableWithMessageHistory(RunnableLambda(chunks), factory)
         .stream("hi", {"session_id": "streamed"}))
    assert ChatHistory("one", db_url).messages == [HumanMessage("hi"), AIMessage("x", id="a1")]
    assert ChatHistory("many", db_url).messages == [HumanMessage("hi"), AIMessage("y"),
                                                    AIMessage("z")]
    assert ChatHistory("streamed", db_url).messages == [HumanMessage("hi"),
                                                        AIMessage("streamed")]


def test_our_chat_models_take_langchain_messages() -> None:
    """A LangChain message list is a model input like ours."""
    model = FakeChatModel(["ok"])
    assert model.invoke([lc.SystemMessage("s"), lc.HumanMessage("hi")]).content == "ok"


class HumanMessage2:
    """Something that is not a message of either kind."""


def test_what_cannot_be_used_is_named_with_its_module(db_url: str) -> None:
    """An input or output item that is no message names its class with its module and says
    what is accepted."""
    chain = RunnableWithMessageHistory(RunnableLambda(lambda m: [HumanMessage2()]),
                                       lambda session_id: ChatHistory(session_id, db_url))
    qualified = f"{__name__}.HumanMessage2"
    with pytest.raises(InvalidInputError) as caught:
        chain.invoke([HumanMessage2()], {"session_id": "s"})
    assert f"input item 0 is a {qualified}, not a message" in str(caught.value)
    assert "LangChain message (langchain_core.messages.BaseMessage)" in str(caught.value)
    with pytest.raises(InvalidInputError, match=f"output item 0 is a {qualified}"):
        chain.invoke("hi", {"session_id": "s"})
    with pytest.raises(InvalidInputError, match=f"got a {qualified}"):
        RunnableWithMessageHistory(
            RunnableLambda(lambda m: HumanMessage2()),
            lambda session_id: ChatHistory(session_id, db_url)).invoke("hi", {"session_id": "s"})
    assert ChatHistory("s", db_url).messages == []


def test_importing_the_runtime_does_not_import_langchain() -> None:
    """langchain_core is imported only when a LangChain object is coerced."""
    code = ("import sys, chatledger.runtime as r; "
            "r.coerce_to_runnable(lambda x: x); r.coerce_to_runnable({'a': len}); "
            "assert 'langchain_core' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-P", "-c", code], check=True)
