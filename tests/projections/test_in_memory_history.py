"""InMemoryChatMessageHistory: LangChain's in-memory history, on a ledger of its own."""

from __future__ import annotations

import pytest

from chatledger.eventstore import AIMessage, HumanMessage, InvalidInputError, SystemMessage
from chatledger.projections import ChatHistory, InMemoryChatMessageHistory


def test_starts_with_the_given_messages_and_compares_by_them() -> None:
    """Two histories with equal messages are equal; a different one is not; a ChatHistory never."""
    first = InMemoryChatMessageHistory(messages=[HumanMessage("hi"), AIMessage("yo")])
    second = InMemoryChatMessageHistory()
    second.add_messages([HumanMessage("hi"), AIMessage("yo")])
    assert first == second
    assert first != InMemoryChatMessageHistory(messages=[HumanMessage("hi")])
    assert first != ChatHistory("in-memory", first.store)
    assert repr(first) == ("InMemoryChatMessageHistory(messages=[HumanMessage(content='hi'), "
                           "AIMessage(content='yo')])")
    with pytest.raises(TypeError):
        hash(first)


def test_each_has_its_own_ledger_with_versions() -> None:
    """Separate objects share nothing; clear keeps earlier versions readable, like any history."""
    one, two = InMemoryChatMessageHistory(), InMemoryChatMessageHistory()
    one.add_message(SystemMessage("s"))
    one.add_user_message("u")
    assert two.messages == [] and one.store is not two.store
    one.clear()
    assert one.messages == [] and one.version == 3
    assert one.as_of(version=2) == [SystemMessage("s"), HumanMessage("u")]
    assert str(InMemoryChatMessageHistory(messages=[HumanMessage("a")])) == "Human: a"


def test_a_non_message_is_refused() -> None:
    """Starting messages are checked like any append."""
    with pytest.raises(InvalidInputError, match="not a message"):
        InMemoryChatMessageHistory(messages=["hi"])  # type: ignore[list-item]

