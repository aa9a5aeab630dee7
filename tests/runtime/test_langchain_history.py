"""ChatledgerMessageHistory inside LangChain's own RunnableWithMessageHistory."""

from __future__ import annotations

import asyncio
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import ConfigurableFieldSpec, RunnableLambda, RunnableParallel
from langchain_core.runnables.history import RunnableWithMessageHistory

from chatledger.eventstore import AIMessage as LedgerAIMessage
from chatledger.eventstore import (
    HistoryCleared,
    InvalidInputError,
    MessageAppended,
    SessionKey,
    open_store,
)
from chatledger.projections import ChatHistory
from chatledger.runtime.langchain import ChatledgerMessageHistory

pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.deprecation.LangChainDeprecationWarning"
)


def _remembering_model(value: PromptValue | list[BaseMessage]) -> AIMessage:
    """A stand-in chat model that knows the user's name only if the history told it."""
    messages = value.to_messages() if isinstance(value, PromptValue) else value
    humans = [m.text for m in messages if isinstance(m, HumanMessage)]
    if "whats my name" in humans[-1]:
        known = any("bob" in h for h in humans[:-1])
        return AIMessage("Your name is Bob." if known else "I don't know your name.")
    return AIMessage("Nice to meet you!")


model = RunnableLambda(_remembering_model)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite URL to a fresh file."""
    return f"sqlite:///{tmp_path / 'memory.db'}"


def _texts(history: ChatledgerMessageHistory) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in history.messages]


def test_messages_in_message_out_remembers_per_session(url: str) -> None:
    """The how-to's first example: the model sees session 1's history, not session 1a's."""

    def get_session_history(session_id: str) -> ChatledgerMessageHistory:
        return ChatledgerMessageHistory(session_id, url)

    chain = RunnableWithMessageHistory(model, get_session_history)
    cfg = {"configurable": {"session_id": "1"}}
    assert chain.invoke([HumanMessage("hi - im bob!")], config=cfg).content == "Nice to meet you!"
    assert chain.invoke([HumanMessage("whats my name?")], config=cfg).content == "Your name is Bob."
    other = {"configurable": {"session_id": "1a"}}
    answer = chain.invoke([HumanMessage("whats my name?")], config=other)
    assert answer.content == "I don't know your name."
    assert _texts(get_session_history("1")) == [
        ("human", "hi - im bob!"), ("ai", "Nice to meet you!"),
        ("human", "whats my name?"), ("ai", "Your name is Bob."),
    ]
    assert len(get_session_history("1a").messages) == 2


def test_dict_input_with_prompt_and_history_key(url: str) -> None:
    """Prompt + model with input and history keys saves only the input message and the reply."""
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You're an assistant who speaks in {language}."),
        MessagesPlaceholder(variable_name="history"),
        ("human", "{input}"),
    ])
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: ChatledgerMessageHistory(session_id, url),
        input_messages_key="input",
        history_messages_key="history",
    )
    cfg = {"configurable": {"session_id": "2"}}
    chain.invoke({"language": "italian", "input": "hi im bob!"}, config=cfg)
    reply = chain.invoke({"language": "italian", "input": "whats my name?"}, config=cfg)
    assert reply.content == "Your name is Bob."
    history = ChatledgerMessageHistory("2", url)
    assert [m.type for m in history.messages] == ["human", "ai", "human", "ai"]
    assert not any(isinstance(m, SystemMessage) for m in history.messages)


def test_messages_in_dict_out(url: str) -> None:
    """With output_messages_key the chain returns its dict unchanged and saves that key's message."""
    chain = RunnableWithMessageHistory(
        RunnableParallel({"output_message": model}),
        lambda session_id: ChatledgerMessageHistory(session_id, url),
        output_messages_key="output_message",
    )
    cfg = {"configurable": {"session_id": "3"}}
    chain.invoke([HumanMessage("hi - im bob!")], config=cfg)
    out = chain.invoke([HumanMessage("whats my name?")], config=cfg)
    assert out == {"output_message": AIMessage("Your name is Bob.")}
    assert len(ChatledgerMessageHistory("3", url).messages) == 4


def test_single_key_for_all_messages(url: str) -> None:
    """A dict with one key for all messages works with only input_messages_key."""
    chain = RunnableWithMessageHistory(
        itemgetter("input_messages") | model,
        lambda session_id: ChatledgerMessageHistory(session_id, url),
        input_messages_key="input_messages",
    )
    cfg = {"configurable": {"session_id": "4"}}
    chain.invoke({"input_messages": [HumanMessage("hi - im bob!")]}, config=cfg)
    out = chain.invoke({"input_messages": [HumanMessage("whats my name?")]}, config=cfg)
    assert out.content == "Your name is Bob."


def test_composite_keys_are_separate_sessions_in_the_catalog(url: str) -> None:
    """user_id + conversation_id become one composite SessionKey, listed by user in the catalog."""

    def get_session_history(user_id: str, conversation_id: str) -> ChatledgerMessageHistory:
        return ChatledgerMessageHistory(
            {"user_id": user_id, "conversation_id": conversation_id}, url
        )

    spec = dict(annotation=str, default="", is_shared=True)
    chain = RunnableWithMessageHistory(
        model,
        get_session_history,
        history_factory_config=[
            ConfigurableFieldSpec(id="user_id", name="User ID", **spec),  # type: ignore[arg-type]
            ConfigurableFieldSpec(id="conversation_id", name="Conversation ID", **spec),  # type: ignore[arg-type]
        ],
    )
    chain.invoke([HumanMessage("hi im bob!")],
                 config={"configurable": {"user_id": "123", "conversation_id": "1"}})
    same = chain.invoke([HumanMessage("whats my name?")],
                        config={"configurable": {"user_id": "123", "conversation_id": "1"}})
    other = chain.invoke([HumanMessage("whats my name?")],
                         config={"configurable": {"user_id": "456", "conversation_id": "1"}})
    assert (same.content, other.content) == ("Your name is Bob.", "I don't know your name.")
    store = open_store(url)
    try:
        keys = [info.key for info in store.sessions(user_id="123")]
        assert keys == [SessionKey(user_id="123", conversation_id="1")]
    finally:
        store.close()


def test_streamed_reply_is_saved_as_one_ai_message(url: str) -> None:
    """RWMH.stream yields chunks, and the log keeps one whole AIMessage, never a chunk."""
    chain = RunnableWithMessageHistory(
        GenericFakeChatModel(messages=iter(["hello there friend"])),
        lambda session_id: ChatledgerMessageHistory(session_id, url),
    )
    chunks = list(chain.stream([HumanMessage("hi")], config={"configurable": {"session_id": "s"}}))
    assert len(chunks) > 1 and all(isinstance(c, AIMessageChunk) for c in chunks)
    history = ChatledgerMessageHistory("s", url)
    saved = history.messages[-1]
    assert type(saved) is AIMessage and saved.content == "hello there friend"
    events = [r.event for r in history.history.events()]
    assert all(isinstance(e, MessageAppended) for e in events)
    last = events[-1]
    assert isinstance(last, MessageAppended) and type(last.message) is LedgerAIMessage


def test_async_chain_uses_only_the_async_twins(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ainvoke reads and writes through ChatHistory's async twins, never the blocking methods."""

    def blocked(*_: Any, **__: Any) -> Any:
        raise AssertionError("a blocking method was called on the async path")

    for name in ("add_messages", "add_message", "clear", "load"):
        monkeypatch.setattr(ChatHistory, name, blocked)
    monkeypatch.setattr(ChatHistory, "messages", property(blocked))
    chain = RunnableWithMessageHistory(
        model, lambda session_id: ChatledgerMessageHistory(session_id, url)
    )
    cfg = {"configurable": {"session_id": "a"}}

    async def main() -> list[BaseMessage]:
        await chain.ainvoke([HumanMessage("hi - im bob!")], config=cfg)
        await chain.ainvoke([HumanMessage("whats my name?")], config=cfg)
        history = ChatledgerMessageHistory("a", url)
        messages = await history.aget_messages()
        await history.aclear()
        assert await history.aget_messages() == []
        return messages

    messages = asyncio.run(main())
    assert [m.text for m in messages][-1] == "Your name is Bob."


def test_clear_keeps_earlier_versions_readable(url: str) -> None:
    """clear() empties the current history while .history.as_of still shows what was there."""
    history = ChatledgerMessageHistory("c", url)
    history.add_messages([HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")])
    history.clear()
    assert history.messages == []
    assert [m.id for m in history.history.as_of(version=2)] == ["h1", "a1"]
    assert isinstance(history.history.events()[-1].event, HistoryCleared)
    assert history.history.store.verify().ok


def test_tool_call_turn_round_trips_exactly(url: str) -> None:
    """An AI tool call, its ToolMessage (artifact, status) and usage read back equal."""
    turn: list[BaseMessage] = [
        HumanMessage("weather in Paris?", id="h1", name="alice"),
        AIMessage(
            "",
            id="run-1",
            tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call_1"}],
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
            response_metadata={"model": "m", "finish_reason": "tool_calls"},
        ),
        ToolMessage("18C", tool_call_id="call_1", artifact={"raw": [1, 2]}, status="error"),
    ]
    history = ChatledgerMessageHistory("t", url)
    for message in turn:
        history.add_message(message)
    assert history.messages == turn
    assert ChatledgerMessageHistory("t", url).messages == turn


def test_non_message_saves_nothing(url: str) -> None:
    """A non-message or an unsupported LangChain type raises InvalidInputError and saves nothing."""
    history = ChatledgerMessageHistory("bad", url)
    with pytest.raises(InvalidInputError, match="message 1"):
        history.add_messages([HumanMessage("ok"), "not a message"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="remove"):
        history.add_messages([HumanMessage("ok"), RemoveMessage(id="x")])
    with pytest.raises(InvalidInputError, match="sequence"):
        history.add_messages(HumanMessage("ok"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"projections\.ChatHistory"):
        history.add_messages([LedgerAIMessage(content="ours, not LangChain's")])  # type: ignore[list-item]
    assert history.history.version == 0


def test_two_instances_agree_and_repr_names_the_key(url: str) -> None:
    """Nothing is cached: a second instance sees the first one's writes at once."""
    first = ChatledgerMessageHistory({"user_id": "u", "conversation_id": "c"}, url)
    second = ChatledgerMessageHistory(SessionKey(user_id="u", conversation_id="c"), url)
    first.add_user_message("hi")
    first.add_ai_message("hello")
    assert second.messages == [HumanMessage("hi"), AIMessage("hello")]
    assert str(second) == "Human: hi\nAI: hello"
    assert "user_id" in repr(first) and first.session_key == second.session_key
