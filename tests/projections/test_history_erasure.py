"""Lawful erasure as the history projection sees it: erased messages vanish from every version."""

from __future__ import annotations

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HistoryCleared,
    HumanMessage,
    InvalidInputError,
    MessageRedacted,
    NotFoundError,
    PayloadErased,
    SessionTagged,
)
from chatledger.projections import ChatHistory, fold, messages_of

TURN = [HumanMessage(content="my card is 4111"), AIMessage(content="noted")]


def _agrees_with_fold_and_rebuild(store: EventStore, key: str) -> None:
    records = store.read(key)
    history = ChatHistory(key, store)
    current = history.messages
    versions = [history.as_of(version=v) for v in range(len(records) + 1)]
    assert current == messages_of(fold(records))
    for v, messages in enumerate(versions):
        assert messages == messages_of(fold(records[:v])), v
    store.rebuild()
    assert history.messages == current
    assert [history.as_of(version=v) for v in range(len(records) + 1)] == versions
    assert store.verify().ok


def test_erased_message_vanishes_from_now_and_from_the_past(store: EventStore) -> None:
    """Erasing one message removes it from messages and from as_of at every version."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    history.add_user_message("fine")
    result = store.erase("s", versions=[1])
    assert result.version == 4
    assert history.messages == [AIMessage(content="noted"), HumanMessage(content="fine")]
    assert history.as_of(version=1) == []
    assert history.as_of(version=2) == [AIMessage(content="noted")]
    records = store.read("s")
    assert isinstance(records[0].event, PayloadErased)
    assert records[3].event == MessageRedacted(version=1, reason="erasure requested")
    info = store.session("s")
    assert info is not None and info.message_count == 2 and info.version == 4
    _agrees_with_fold_and_rebuild(store, "s")


def test_erase_everything_empties_the_session(store: EventStore) -> None:
    """erase(key) with no versions erases every message and leaves an empty, verifiable history."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    history.clear()
    history.add_user_message("later")
    store.erase("s")
    assert history.messages == []
    assert all(history.as_of(version=v) == [] for v in range(history.version + 1))
    info = store.session("s")
    assert info is not None and info.message_count == 0
    _agrees_with_fold_and_rebuild(store, "s")


def test_erasing_twice_is_harmless(store: EventStore) -> None:
    """Erasing an already erased message changes no history and still verifies."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    store.erase("s", versions=[2])
    store.erase("s", versions=[2])
    assert history.messages == [TURN[0]]
    _agrees_with_fold_and_rebuild(store, "s")


def test_erasing_a_fork_event_removes_the_inherited_messages(store: EventStore) -> None:
    """Erasing a fork's SessionForked event drops what it inherited; the parent is untouched."""
    parent = ChatHistory("p", store)
    parent.add_messages(TURN)
    child = parent.fork("c")
    child.add_user_message("own")
    store.erase("c", versions=[1])
    assert child.messages == [HumanMessage(content="own")]
    assert parent.messages == TURN
    _agrees_with_fold_and_rebuild(store, "c")
    _agrees_with_fold_and_rebuild(store, "p")


def test_erasing_a_missing_version_changes_nothing(store: EventStore) -> None:
    """Erasing a version past the head, or in an unknown session, is a NotFoundError."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    with pytest.raises(NotFoundError):
        store.erase("s", versions=[3])
    with pytest.raises(NotFoundError):
        store.erase("s", versions=[0])
    with pytest.raises(NotFoundError):
        store.erase("nobody")
    assert history.messages == TURN
    assert history.version == 2
    assert store.verify().ok


def test_erasing_a_clear_is_refused(store: EventStore) -> None:
    """Only message, fork and run payloads can be erased; a clear stays in force."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    history.clear()
    history.add_user_message("after")
    with pytest.raises(InvalidInputError):
        store.erase("s", versions=[3])
    assert store.read("s")[2].event == HistoryCleared()
    assert history.version == 4
    _agrees_with_fold_and_rebuild(store, "s")
    assert history.messages == [HumanMessage(content="after")]


def test_erasing_a_tag_event_is_refused(store: EventStore) -> None:
    """A SessionTagged event cannot be erased, so tags survive a rebuild."""
    store.append("s", [SessionTagged(added=["vip"])])
    ChatHistory("s", store).add_messages(TURN)
    with pytest.raises(InvalidInputError):
        store.erase("s", versions=[1])
    store.rebuild()
    info = store.session("s")
    assert info is not None and info.tags == ["vip"]


def test_erasing_a_redaction_is_refused(store: EventStore) -> None:
    """The record of an erasure cannot itself be erased, so verify() stays clean."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    store.erase("s", versions=[1])
    with pytest.raises(InvalidInputError):
        store.erase("s", versions=[3])
    assert store.verify().ok


def test_directly_appended_redaction_keeps_as_of_equal_to_the_fold(store: EventStore) -> None:
    """A MessageRedacted appended without erase() is refused, or as_of still equals the fold."""
    history = ChatHistory("s", store)
    history.add_messages([HumanMessage(content="a"), HumanMessage(content="b")])
    try:
        store.append("s", [MessageRedacted(version=1)])
    except InvalidInputError:
        assert history.version == 2
        assert history.messages == [HumanMessage(content="a"), HumanMessage(content="b")]
        return
    _agrees_with_fold_and_rebuild(store, "s")
