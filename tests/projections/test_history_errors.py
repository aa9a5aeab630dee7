"""Bad input to ChatHistory raises a clear chatledger error and leaves stored data untouched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    ChatledgerError,
    ConcurrencyError,
    EventStore,
    HumanMessage,
    InvalidInputError,
    InvalidKeyError,
    NotFoundError,
    SessionKey,
)
from chatledger.projections import ChatHistory, window

TURN = [HumanMessage(content="hi"), AIMessage(content="hello")]


@pytest.fixture
def history(store: EventStore) -> ChatHistory:
    """A session holding one turn (version 2)."""
    h = ChatHistory("s", store)
    h.add_messages(TURN)
    return h


def _unchanged(history: ChatHistory) -> None:
    assert history.version == 2
    assert history.messages == TURN
    assert history.store.verify().ok


# -- as_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [-1, -100])
def test_as_of_negative_version(history: ChatHistory, version: int) -> None:
    """A negative version is an InvalidInputError naming the version."""
    with pytest.raises(InvalidInputError, match="version"):
        history.as_of(version=version)


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_as_of_version_that_is_not_an_int(history: ChatHistory, version: Any) -> None:
    """A version that is not an int (bool, float, str) is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="version"):
        history.as_of(version=version)


def test_as_of_version_beyond_head(history: ChatHistory) -> None:
    """A version past the head is a NotFoundError naming both versions."""
    with pytest.raises(NotFoundError, match="version 3") as caught:
        history.as_of(version=3)
    assert "at version 2" in str(caught.value)
    assert isinstance(caught.value, ChatledgerError)


def test_as_of_version_beyond_head_of_an_unknown_session(store: EventStore) -> None:
    """An unknown session has only version 0; asking for 1 is a NotFoundError."""
    with pytest.raises(NotFoundError):
        ChatHistory("nobody", store).as_of(version=1)


def test_as_of_both_version_and_time(history: ChatHistory) -> None:
    """Giving both version and time is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="exactly one"):
        history.as_of(version=1, time=datetime.now(UTC))


def test_as_of_neither_version_nor_time(history: ChatHistory) -> None:
    """Giving neither version nor time is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="exactly one"):
        history.as_of()


def test_as_of_naive_datetime(history: ChatHistory) -> None:
    """A naive datetime is an InvalidInputError asking for a timezone."""
    with pytest.raises(InvalidInputError, match="timezone"):
        history.as_of(time=datetime.now())


def test_as_of_time_that_is_not_a_datetime(history: ChatHistory) -> None:
    """A time given as text is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="datetime"):
        history.as_of(time="2024-01-01T00:00:00Z")  # type: ignore[arg-type]


# -- window --------------------------------------------------------------------------------


@pytest.mark.parametrize("last", [0, -1])
def test_window_last_not_positive(history: ChatHistory, last: int) -> None:
    """window(last=N) with N <= 0 is an InvalidInputError naming 'last'."""
    with pytest.raises(InvalidInputError, match="last"):
        history.window(last=last)


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_window_max_tokens_not_positive(history: ChatHistory, max_tokens: int) -> None:
    """window(max_tokens=N) with N <= 0 is an InvalidInputError naming 'max_tokens'."""
    with pytest.raises(InvalidInputError, match="max_tokens"):
        history.window(max_tokens=max_tokens)


@pytest.mark.parametrize("limits", [{"last": 1.5}, {"last": True}, {"max_tokens": "10"}])
def test_window_limit_not_an_int(history: ChatHistory, limits: dict[str, Any]) -> None:
    """A limit that is not an int (float, bool, str) is an InvalidInputError."""
    with pytest.raises(InvalidInputError):
        history.window(**limits)


def test_window_without_a_limit(history: ChatHistory) -> None:
    """window() with no limit is an InvalidInputError, on the history and the pure function."""
    with pytest.raises(InvalidInputError, match="last=N or max_tokens=N"):
        history.window()
    with pytest.raises(InvalidInputError, match="last=N or max_tokens=N"):
        window(TURN)


def test_window_rejects_bad_limits_on_an_empty_session(store: EventStore) -> None:
    """Limits are checked even when there is nothing to window."""
    with pytest.raises(InvalidInputError):
        ChatHistory("empty", store).window(last=0)


# -- add_messages --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["oops", {"type": "human", "content": "x"}, None, 42])
def test_add_messages_with_a_non_message_item_saves_nothing(
    history: ChatHistory, bad: Any
) -> None:
    """A non-message item anywhere in the list is an InvalidInputError and nothing is saved."""
    with pytest.raises(InvalidInputError, match="item 1"):
        history.add_messages([HumanMessage(content="ok"), bad, AIMessage(content="ok")])
    _unchanged(history)


def test_add_messages_with_a_bare_string(history: ChatHistory) -> None:
    """A bare string instead of a list is an InvalidInputError and nothing is saved."""
    with pytest.raises(InvalidInputError, match="list of messages"):
        history.add_messages("hello")  # type: ignore[arg-type]
    _unchanged(history)


def test_add_messages_with_a_bare_message(history: ChatHistory) -> None:
    """A single message instead of a list is an InvalidInputError and nothing is saved."""
    with pytest.raises(InvalidInputError, match="list of messages"):
        history.add_messages(HumanMessage(content="hello"))  # type: ignore[arg-type]
    _unchanged(history)


def test_add_message_with_a_non_message(history: ChatHistory) -> None:
    """add_message of a dict is an InvalidInputError and nothing is saved."""
    with pytest.raises(InvalidInputError):
        history.add_message({"role": "user", "content": "x"})  # type: ignore[arg-type]
    _unchanged(history)


class AIMessage2:
    """Neither chatledger's message nor LangChain's."""


def test_a_foreign_item_is_named_with_its_module(history: ChatHistory) -> None:
    """The error names the item's class with its module and says what add_messages accepts."""
    with pytest.raises(InvalidInputError) as caught:
        history.add_messages([HumanMessage(content="ok"), AIMessage2()])  # type: ignore[list-item]
    text = str(caught.value)
    assert f"item 1 is a {__name__}.AIMessage2, not a message" in text
    assert "chatledger message" in text and "LangChain message" in text
    assert text.endswith("nothing was saved")
    _unchanged(history)


def test_add_messages_with_a_stale_expected_version(history: ChatHistory) -> None:
    """A stale expected_version is a ConcurrencyError and nothing is saved."""
    with pytest.raises(ConcurrencyError) as caught:
        history.add_messages([HumanMessage(content="late")], expected_version=1)
    assert caught.value.actual_version == 2
    _unchanged(history)


def test_empty_list_appends_nothing(history: ChatHistory) -> None:
    """add_messages([]) writes no event and reports the current version."""
    assert history.add_messages([]).version == 2
    _unchanged(history)


# -- keys and stores -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a\x00b", 42, SessionKey])
def test_bad_key_is_an_invalid_key_error(store: EventStore, key: Any) -> None:
    """A malformed key is an InvalidKeyError before anything is read or written."""
    with pytest.raises(InvalidKeyError):
        ChatHistory(key, store)


def test_store_that_is_neither_store_nor_url(store: EventStore) -> None:
    """Passing something other than a store or a URL is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="EventStore or a URL"):
        ChatHistory("s", 42)  # type: ignore[arg-type]


# -- fork ----------------------------------------------------------------------------------


def test_fork_onto_an_existing_session(history: ChatHistory, store: EventStore) -> None:
    """Forking onto a session that has events is a ConcurrencyError naming it; both stay as they were."""
    other = ChatHistory("other", store)
    other.add_user_message("mine")
    with pytest.raises(ConcurrencyError) as refused:
        history.fork("other")
    assert str(refused.value) == ("cannot fork 'session_id=s' onto 'session_id=other': that "
                                  "session already exists (at version 1); nothing was written")
    assert (refused.value.stream_id, refused.value.actual_version) == ("session_id=other", 1)
    assert other.messages == [HumanMessage(content="mine")]
    assert other.version == 1
    _unchanged(history)


@pytest.mark.parametrize("same", ["s", SessionKey(session_id="s"), {"session_id": "s"}])
def test_fork_onto_itself(history: ChatHistory, same: Any) -> None:
    """Forking a session onto its own key (in any spelling) is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="itself"):
        history.fork(same)
    _unchanged(history)


def test_fork_at_a_version_beyond_head(history: ChatHistory, store: EventStore) -> None:
    """Forking at a version past the head is a NotFoundError and creates no session."""
    with pytest.raises(NotFoundError):
        history.fork("branch", at_version=3)
    assert store.version("branch") == 0
    assert store.session("branch") is None
    _unchanged(history)


def test_fork_at_a_negative_version(history: ChatHistory, store: EventStore) -> None:
    """Forking at a negative version is an InvalidInputError and creates no session."""
    with pytest.raises(InvalidInputError):
        history.fork("branch", at_version=-1)
    assert store.session("branch") is None
    _unchanged(history)


def test_fork_onto_a_bad_key(history: ChatHistory, store: EventStore) -> None:
    """Forking onto a malformed key is an InvalidKeyError."""
    with pytest.raises(InvalidKeyError):
        history.fork("")
    _unchanged(history)
