"""Every code block of the LangChain message-history how-to, ported line for line."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import pytest

from chatledger.eventstore import Message, SessionKey
from chatledger.projections import ChatHistory
from chatledger.runtime import (
    AIMessage,
    ChatPromptTemplate,
    ConfigurableFieldSpec,
    HumanMessage,
    MessagesPlaceholder,
    RunnableParallel,
    RunnableWithMessageHistory,
    SystemMessage,
)
from chatledger.runtime.models import OfflineChatModel


class SeeingModel(OfflineChatModel):
    """The offline model, also keeping what it was shown (test instrumentation)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Message]] = []

    def _generate(self, messages: list[Message], *, stop: list[str] | None = None) -> AIMessage:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop)


@pytest.fixture
def model() -> SeeingModel:
    """The offline model the how-to's ``model`` stands for."""
    return SeeingModel()


@pytest.fixture
def get_session_history(db_url: str) -> Any:
    """The how-to's factory, on chatledger: one ChatHistory per session id."""

    def get_session_history(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, db_url)

    return get_session_history


def _prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "You're an assistant who speaks in {language}. Respond in 20 words or fewer",
            ),
            MessagesPlaceholder(variable_name="history"),
            ("human", "{input}"),
        ]
    )


def _texts(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in messages]


def test_intro_block_dict_input_with_session_id(get_session_history: Any, db_url: str) -> None:
    """The opening example: a dict input and a session_id config run and save the turn."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You help with {ability}."), MessagesPlaceholder(variable_name="history"),
         ("human", "{input}")]
    )
    runnable = prompt | OfflineChatModel()
    with_message_history = RunnableWithMessageHistory(
        runnable, get_session_history, input_messages_key="input", history_messages_key="history"
    )
    reply = with_message_history.invoke(
        {"ability": "math", "input": "What does cosine mean?"},
        config={"configurable": {"session_id": "abc123"}},
    )
    assert reply.content == "You said: What does cosine mean?"
    assert _texts(ChatHistory("abc123", db_url).messages) == [
        ("human", "What does cosine mean?"), ("ai", "You said: What does cosine mean?"),
    ]


def test_messages_input_message_output(model: SeeingModel, get_session_history: Any,
                                       db_url: str) -> None:
    """A bare model remembers Bob in session "1" and not in session "1a"."""
    runnable_with_history = RunnableWithMessageHistory(
        model,
        get_session_history,
    )
    first = runnable_with_history.invoke(
        [HumanMessage(content="hi - im bob!")],
        config={"configurable": {"session_id": "1"}},
    )
    assert first.content == "Nice to meet you, Bob!"
    second = runnable_with_history.invoke(
        [HumanMessage(content="whats my name?")],
        config={"configurable": {"session_id": "1"}},
    )
    assert second.content == "Your name is Bob."
    assert _texts(model.seen[1]) == [
        ("human", "hi - im bob!"), ("ai", "Nice to meet you, Bob!"), ("human", "whats my name?"),
    ]
    other = runnable_with_history.invoke(
        [HumanMessage(content="whats my name?")],
        config={"configurable": {"session_id": "1a"}},
    )
    assert other.content == "I'm sorry, I don't know your name."
    assert _texts(model.seen[2]) == [("human", "whats my name?")]
    assert _texts(ChatHistory("1", db_url).messages) == [
        ("human", "hi - im bob!"), ("ai", "Nice to meet you, Bob!"),
        ("human", "whats my name?"), ("ai", "Your name is Bob."),
    ]
    assert ChatHistory("1a", db_url).messages == [HumanMessage("whats my name?"), other]


def test_dictionary_input_message_output(model: SeeingModel, get_session_history: Any,
                                         db_url: str) -> None:
    """prompt | model with input and history keys remembers in "2", not in "2a", in Italian."""
    prompt = _prompt()

    runnable = prompt | model

    runnable_with_history = RunnableWithMessageHistory(
        runnable,
        get_session_history,
        input_messages_key="input",
        history_messages_key="history",
    )
    first = runnable_with_history.invoke(
        {"language": "italian", "input": "hi im bob!"},
        config={"configurable": {"session_id": "2"}},
    )
    assert first.content.startswith("Ciao Bob!")
    second = runnable_with_history.invoke(
        {"language": "italian", "input": "whats my name?"},
        config={"configurable": {"session_id": "2"}},
    )
    assert second.content == "Il tuo nome è Bob."
    assert isinstance(model.seen[1][0], SystemMessage)
    assert _texts(model.seen[1][1:]) == [
        ("human", "hi im bob!"), ("ai", first.text), ("human", "whats my name?"),
    ]
    other = runnable_with_history.invoke(
        {"language": "italian", "input": "whats my name?"},
        config={"configurable": {"session_id": "2a"}},
    )
    assert other.content == "Mi dispiace, non so il tuo nome."
    stored = ChatHistory("2", db_url).messages
    assert [m.type for m in stored] == ["human", "ai", "human", "ai"]
    assert not any(isinstance(m, SystemMessage) for m in stored)


def test_messages_input_dict_output(model: SeeingModel, get_session_history: Any,
                                    db_url: str) -> None:
    """A RunnableParallel output saved by output_messages_key remembers in "3", not "3a"."""
    chain = RunnableParallel({"output_message": model})

    runnable_with_history = RunnableWithMessageHistory(
        chain,
        get_session_history,
        output_messages_key="output_message",
    )
    first = runnable_with_history.invoke(
        [HumanMessage(content="hi - im bob!")],
        config={"configurable": {"session_id": "3"}},
    )
    assert set(first) == {"output_message"}
    assert first["output_message"].content == "Nice to meet you, Bob!"
    second = runnable_with_history.invoke(
        [HumanMessage(content="whats my name?")],
        config={"configurable": {"session_id": "3"}},
    )
    assert second["output_message"].content == "Your name is Bob."
    other = runnable_with_history.invoke(
        [HumanMessage(content="whats my name?")],
        config={"configurable": {"session_id": "3a"}},
    )
    assert other["output_message"].content == "I'm sorry, I don't know your name."
    assert ChatHistory("3", db_url).messages[-1] == second["output_message"]


def test_dict_with_single_key_for_all_messages(model: SeeingModel, get_session_history: Any,
                                               db_url: str) -> None:
    """itemgetter("input_messages") | model remembers in "4", not in "4a"."""
    runnable_with_history = RunnableWithMessageHistory(
        itemgetter("input_messages") | model,
        get_session_history,
        input_messages_key="input_messages",
    )
    runnable_with_history.invoke(
        {"input_messages": [HumanMessage(content="hi - im bob!")]},
        config={"configurable": {"session_id": "4"}},
    )
    second = runnable_with_history.invoke(
        {"input_messages": [HumanMessage(content="whats my name?")]},
        config={"configurable": {"session_id": "4"}},
    )
    assert second.content == "Your name is Bob."
    assert len(model.seen[1]) == 3
    other = runnable_with_history.invoke(
        {"input_messages": [HumanMessage(content="whats my name?")]},
        config={"configurable": {"session_id": "4a"}},
    )
    assert other.content == "I'm sorry, I don't know your name."
    assert _texts(ChatHistory("4", db_url).messages)[2] == ("human", "whats my name?")
    assert len(ChatHistory("4", db_url).messages) == 4


def test_customization_user_id_and_conversation_id(model: SeeingModel, db_url: str) -> None:
    """Two factory fields: the same user remembers; a new user_id starts a new history."""
    runnable = _prompt() | model

    def get_session_history(user_id: str, conversation_id: str) -> ChatHistory:
        return ChatHistory(SessionKey(user_id=user_id, conversation_id=conversation_id), db_url)

    with_message_history = RunnableWithMessageHistory(
        runnable,
        get_session_history,
        input_messages_key="input",
        history_messages_key="history",
        history_factory_config=[
            ConfigurableFieldSpec(
                id="user_id",
                annotation=str,
                name="User ID",
                description="Unique identifier for the user.",
                default="",
                is_shared=True,
            ),
            ConfigurableFieldSpec(
                id="conversation_id",
                annotation=str,
                name="Conversation ID",
                description="Unique identifier for the conversation.",
                default="",
                is_shared=True,
            ),
        ],
    )

    first = with_message_history.invoke(
        {"language": "italian", "input": "hi im bob!"},
        config={"configurable": {"user_id": "123", "conversation_id": "1"}},
    )
    assert first.content.startswith("Ciao Bob!")
    # remembers
    remembered = with_message_history.invoke(
        {"language": "italian", "input": "whats my name?"},
        config={"configurable": {"user_id": "123", "conversation_id": "1"}},
    )
    assert remembered.content == "Il tuo nome è Bob."
    # New user_id --> does not remember
    forgotten = with_message_history.invoke(
        {"language": "italian", "input": "whats my name?"},
        config={"configurable": {"user_id": "456", "conversation_id": "1"}},
    )
    assert forgotten.content == "Mi dispiace, non so il tuo nome."
    key = SessionKey(user_id="123", conversation_id="1")
    assert len(ChatHistory(key, db_url).messages) == 4
    assert len(ChatHistory(SessionKey(user_id="456", conversation_id="1"), db_url).messages) == 2
    assert [s.id for s in with_message_history.config_specs] == ["conversation_id", "user_id"]


def test_customization_with_the_howtos_string_key_still_works(model: SeeingModel,
                                                              db_url: str) -> None:
    """The how-to's f"{user_id}--{conversation_id}" key also works, as a plain session id."""

    def get_session_history(user_id: str, conversation_id: str) -> ChatHistory:
        return ChatHistory(f"{user_id}--{conversation_id}", db_url)

    chain = RunnableWithMessageHistory(
        _prompt() | model, get_session_history, input_messages_key="input",
        history_messages_key="history",
        history_factory_config=[ConfigurableFieldSpec(id="user_id", annotation=str),
                                ConfigurableFieldSpec(id="conversation_id", annotation=str)],
    )
    config = {"configurable": {"user_id": "123", "conversation_id": "1"}}
    chain.invoke({"language": "english", "input": "hi im bob!"}, config=config)
    assert chain.invoke({"language": "english", "input": "whats my name?"},
                        config=config).content == "Your name is Bob."
    assert len(ChatHistory("123--1", db_url).messages) == 4
