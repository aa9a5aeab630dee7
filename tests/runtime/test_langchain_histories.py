"""LangChain's own chat histories as factory results of chatledger's RunnableWithMessageHistory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain_community.chat_message_histories import SQLChatMessageHistory
from langchain_core import messages as lc
from langchain_core.chat_history import InMemoryChatMessageHistory

from chatledger.eventstore import AIMessage, HumanMessage, RunRecorded
from chatledger.runtime import RunnableLambda, RunnableWithMessageHistory
from chatledger.runtime.langchain import ChatledgerMessageHistory


def counting_chain(histories: Any) -> RunnableWithMessageHistory:
    """A wrapper whose model answers with how many messages it was given."""
    model = RunnableLambda(lambda messages: AIMessage(f"saw {len(messages)}"))
    return RunnableWithMessageHistory(model, histories)


def test_sql_chat_message_history_works_as_the_factory_result(tmp_path: Path) -> None:
    """SQLChatMessageHistory stores LangChain messages; the model sees the history, sync and async."""
    url = f"sqlite:///{tmp_path / 'lc.db'}"
    chain = counting_chain(lambda session_id: SQLChatMessageHistory(session_id, connection=url))
    config = {"configurable": {"session_id": "s"}}
    assert chain.invoke("hi", config) == AIMessage("saw 1")
    assert chain.invoke([HumanMessage("again")], config) == AIMessage("saw 3")
    assert asyncio.run(chain.ainvoke("third", config)) == AIMessage("saw 5")
    stored = SQLChatMessageHistory("s", connection=url).messages
    assert stored == [lc.HumanMessage("hi"), lc.AIMessage("saw 1"), lc.HumanMessage("again"),
                      lc.AIMessage("saw 3"), lc.HumanMessage("third"), lc.AIMessage("saw 5")]


def test_a_streamed_turn_is_saved_whole_in_a_langchain_history() -> None:
    """A streamed reply lands in the LangChain history as one AIMessage, not a chunk."""
    store: dict[str, InMemoryChatMessageHistory] = {}

    def history(session_id: str) -> InMemoryChatMessageHistory:
        return store.setdefault(session_id, InMemoryChatMessageHistory())

    from chatledger.runtime.models import FakeChatModel

    chain = RunnableWithMessageHistory(FakeChatModel(["one two"]), history)
    chunks = list(chain.stream("hi", {"configurable": {"session_id": "s"}}))
    assert len(chunks) > 1
    saved = store["s"].messages
    assert [(type(m), m.content) for m in saved] == [(lc.HumanMessage, "hi"),
                                                    (lc.AIMessage, "one two")]


def test_chatledger_message_history_keeps_its_ledger_powers(db_url: str) -> None:
    """The LangChain-shaped ChatledgerMessageHistory still records the run with the turn."""
    chain = counting_chain(lambda session_id: ChatledgerMessageHistory(session_id, db_url))
    chain.invoke("hi", {"configurable": {"session_id": "s"}})
    events = ChatledgerMessageHistory("s", db_url).history.events()
    assert any(isinstance(r.event, RunRecorded) for r in events)
    assert ChatledgerMessageHistory("s", db_url).messages == [lc.HumanMessage("hi"),
                                                               lc.AIMessage("saw 1")]
