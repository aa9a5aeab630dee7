"""ChatPromptTemplate and MessagesPlaceholder: formatting, variables and errors."""

from __future__ import annotations

import pytest

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    InvalidInputError,
    SystemMessage,
)
from chatledger.runtime import ChatPromptTemplate, ChatPromptValue, MessagesPlaceholder
from chatledger.runtime.models import FakeChatModel


def howto_prompt() -> ChatPromptTemplate:
    """The how-to's prompt: system with {language}, a history placeholder, human {input}."""
    return ChatPromptTemplate.from_messages(
        [
            ("system", "You're an assistant who speaks in {language}. Respond in 20 words or fewer"),
            MessagesPlaceholder(variable_name="history"),
            ("human", "{input}"),
        ]
    )


def test_from_messages_formats_roles_and_placeholder() -> None:
    """Tuples become messages of their role and the placeholder splices in its list."""
    value = howto_prompt().invoke({"language": "italian", "input": "hi",
                                   "history": [HumanMessage("a"), AIMessage("b")]})
    assert isinstance(value, ChatPromptValue)
    assert value.to_messages() == [
        SystemMessage("You're an assistant who speaks in italian. Respond in 20 words or fewer"),
        HumanMessage("a"),
        AIMessage("b"),
        HumanMessage("hi"),
    ]


def test_input_variables_are_sorted_and_include_required_placeholders() -> None:
    """``input_variables`` lists every required variable, sorted; optional ones are apart."""
    assert howto_prompt().input_variables == ["history", "input", "language"]
    prompt = ChatPromptTemplate.from_messages([("placeholder", "{extra}"), ("user", "{q}")])
    assert prompt.input_variables == ["q"]
    assert prompt.optional_variables == ["extra"]
    assert prompt.invoke({"q": "x"}).to_messages() == [HumanMessage("x")]


def test_missing_variable_raises_naming_it() -> None:
    """A missing template variable raises InvalidInputError naming exactly the missing ones."""
    with pytest.raises(InvalidInputError, match=r"missing variables \['language'\]"):
        howto_prompt().invoke({"input": "hi", "history": []})


def test_missing_placeholder_is_an_error_unless_optional() -> None:
    """A required placeholder variable must be given; an optional one defaults to no messages."""
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("h"), ("human", "{q}")])
    with pytest.raises(InvalidInputError, match="'h'"):
        prompt.invoke({"q": "x"})
    optional = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("h", optional=True), ("human", "{q}")]
    )
    assert optional.invoke({"q": "x"}).to_messages() == [HumanMessage("x")]


def test_placeholder_value_must_be_a_list_of_messages() -> None:
    """A string where a message list belongs raises InvalidInputError naming the variable."""
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history")])
    with pytest.raises(InvalidInputError, match="'history' must be a list"):
        prompt.invoke({"history": "not a list"})


def test_all_role_spellings_and_static_messages() -> None:
    """user/assistant alias human/ai; message objects pass through unformatted."""
    prompt = ChatPromptTemplate.from_messages(
        [("user", "u{x}"), ("assistant", "a{x}"), ("ai", "b"), SystemMessage("{not formatted}")]
    )
    assert prompt.invoke({"x": "1"}).to_messages() == [
        HumanMessage("u1"), AIMessage("a1"), AIMessage("b"), SystemMessage("{not formatted}"),
    ]


def test_unknown_role_raises() -> None:
    """A role outside the known ones raises InvalidInputError listing the allowed roles."""
    with pytest.raises(InvalidInputError, match="'robot'"):
        ChatPromptTemplate.from_messages([("robot", "x")])


def test_braces_escape_and_single_variable_shortcut() -> None:
    """``{{`` is a literal brace, and a one-variable prompt accepts a bare value."""
    prompt = ChatPromptTemplate.from_messages([("human", "{{literal}} {q}")])
    assert prompt.input_variables == ["q"]
    assert prompt.invoke("hello").to_messages() == [HumanMessage("{literal} hello")]


def test_models_accept_prompt_values() -> None:
    """A chat model invoked with a prompt value sees the prompt's messages."""
    model = FakeChatModel(["ok"])
    (howto_prompt() | model).invoke({"language": "english", "input": "yo", "history": []})
    assert [m.type for m in model.calls[0]] == ["system", "human"]


def test_placeholder_accepts_role_pairs_and_keeps_last_n() -> None:
    """Placeholder values may be (role, text) pairs; ``n_messages`` keeps the tail."""
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("h", n_messages=2)])
    messages = prompt.invoke({"h": [("human", "1"), ("ai", "2"), ("critic", "3")]}).to_messages()
    assert messages == [AIMessage("2"), ChatMessage(content="3", role="critic")]
