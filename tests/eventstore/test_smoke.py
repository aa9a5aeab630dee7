"""The store's basic promise, end to end, on every backend."""

from __future__ import annotations

from chatledger.eventstore import AIMessage, EventStore, HumanMessage, MessageAppended, SessionKey


def test_append_then_read_returns_the_events(store: EventStore) -> None:
    """What is appended is read back, in order, with versions 1..n."""
    key = SessionKey(user_id="123", conversation_id="1")
    result = store.append(key, [MessageAppended(message=HumanMessage("hi")),
                                MessageAppended(message=AIMessage("hello"))], expected_version=0)
    assert result.version == 2
    records = store.read(key)
    assert [r.version for r in records] == [1, 2]
    assert [r.event for r in records] == [MessageAppended(message=HumanMessage("hi")),
                                          MessageAppended(message=AIMessage("hello"))]
    assert store.verify().ok
