"""LangChain runnables inside chatledger's chains and wrapper, messages converted both ways."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from langchain_core import messages as lc
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.runnables import RunnableLambda as LCRunnableLambda
from langchain_core.tools import tool

from chatledger.eventstore import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from chatledger.projections import ChatHistory
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


def test_importing_the_runtime_does_not_import_langchain() -> None:
    """langchain_core is imported only when a LangChain object is coerced."""
    code = ("import sys, chatledger.runtime as r; "
            "r.coerce_to_runnable(lambda x: x); r.coerce_to_runnable({'a': len}); "
            "assert 'langchain_core' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-P", "-c", code], check=True)
