"""Erasure that leaves nothing to recover: salted digests, every copy in forks, a receipt."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from chatledger.eventstore import (
    ErasureReceipt,
    EventStore,
    HumanMessage,
    MessageAppended,
    PayloadErased,
    SessionKey,
    _codec,
)
from chatledger.projections import ChatHistory

KEY = SessionKey(user_id="123", conversation_id="1")
BIRTHDAY = "1985-03-14"


def said(text: str) -> MessageAppended:
    """A human message event."""
    return MessageAppended(message=HumanMessage(text))


def test_erase_returns_a_receipt_with_kept_digests_and_heads(store: EventStore) -> None:
    """The receipt names each erased event with the digest it keeps; the head after extends
    the head before."""
    store.append(KEY, [said("one"), said("two")])
    stored = {r.version: r for r in store.read(KEY)}
    receipt = store.erase(KEY, versions=[2], reason="asked")
    assert isinstance(receipt, ErasureReceipt)
    assert receipt.versions == [2]
    assert [(e.stream_id, e.version, e.position) for e in receipt.erased] == [
        (KEY.stream_id, 2, stored[2].position)]
    assert receipt.version == 3 and len(receipt.positions) == 1
    # on PostgreSQL a head covers the prefix below the reader horizon, which a transaction of
    # another client may hold back for a moment
    assert receipt.before.size <= receipt.after.size <= receipt.before.size + 1
    assert store.verify(against=receipt.before).ok
    assert store.verify(against=receipt.after).ok
    assert store.verify().ok


def test_a_kept_digest_cannot_be_matched_by_guessing(store: EventStore) -> None:
    """The brute force of the issue (every date of a century, hashed as the stored payload)
    finds nothing: the digest is salted and the salt was erased with the payload."""
    event = said(f"I was born on {BIRTHDAY}")
    store.append(KEY, [event])
    receipt = store.erase(KEY)
    kept = receipt.erased[0].payload_digest
    original = _codec.encode_event(event)
    assert hashlib.sha256(original).hexdigest() != kept  # what an unsalted digest would be
    day, found = date(1900, 1, 1), []
    while day.year < 2030:
        guess = _codec.encode_event(said(f"I was born on {day.isoformat()}"))
        if hashlib.sha256(guess).hexdigest() == kept:
            found.append(day)
        day += timedelta(days=1)
    assert found == []
    assert isinstance(store.read(KEY)[0].event, PayloadErased)


def test_erasing_a_parent_reaches_every_fork_that_copied_it(store: EventStore) -> None:
    """Forks (and forks of forks) that carry copies of the erased messages lose those copies;
    their own later messages stay."""
    parent = ChatHistory(KEY, store)
    parent.add_messages([HumanMessage(f"born {BIRTHDAY}"), HumanMessage("more")])
    fork = parent.fork(SessionKey(user_id="123", conversation_id="2"))
    fork.add_messages([HumanMessage("the fork's own")])
    grandchild = fork.fork(SessionKey(user_id="123", conversation_id="3"))
    unrelated = ChatHistory(SessionKey(user_id="9", conversation_id="1"), store)
    unrelated.add_messages([HumanMessage(f"born {BIRTHDAY}")])
    receipt = store.erase(KEY)
    streams = {e.stream_id for e in receipt.erased}
    assert streams == {KEY.stream_id, fork.key.stream_id, grandchild.key.stream_id}
    assert parent.messages == []
    assert fork.messages == [HumanMessage("the fork's own")]
    assert grandchild.messages == []
    assert unrelated.messages == [HumanMessage(f"born {BIRTHDAY}")]
    for key in (KEY, fork.key, grandchild.key):
        assert all(BIRTHDAY not in _codec.encode(r.event).decode() for r in store.read(key))
    assert store.verify().ok


def test_a_fork_taken_before_the_erased_version_is_left_alone(store: EventStore) -> None:
    """A fork that copied only earlier messages keeps them when a later version is erased."""
    parent = ChatHistory(KEY, store)
    parent.add_messages([HumanMessage("keep"), HumanMessage(f"born {BIRTHDAY}")])
    fork = parent.fork(SessionKey(user_id="123", conversation_id="2"), at_version=1)
    receipt = store.erase(KEY, versions=[2])
    assert {e.stream_id for e in receipt.erased} == {KEY.stream_id}
    assert fork.messages == [HumanMessage("keep")]


def test_a_fork_taken_after_a_clear_holds_no_copy_and_is_left_alone(store: EventStore) -> None:
    """A fork copies the history after the parent's last clear: erasing a message from
    before that clear leaves the fork (and its own forks) whole, while a fork taken before
    the clear, which does carry the message, loses its copy."""
    parent = ChatHistory(KEY, store)
    parent.add_messages([HumanMessage(f"born {BIRTHDAY}"), HumanMessage("noted")])
    before = parent.fork(SessionKey(user_id="123", conversation_id="before"))
    parent.clear()
    parent.add_messages([HumanMessage("new topic"), HumanMessage("sure")])
    after = parent.fork(SessionKey(user_id="123", conversation_id="after"))
    after.add_messages([HumanMessage("echo")])
    after_after = after.fork(SessionKey(user_id="123", conversation_id="after-after"))
    receipt = store.erase(KEY, versions=[1])
    assert {e.stream_id for e in receipt.erased} == {KEY.stream_id, before.key.stream_id}
    assert after.messages == [HumanMessage("new topic"), HumanMessage("sure"),
                              HumanMessage("echo")]
    assert after_after.messages == after.messages
    assert before.messages == []
    for key in (KEY, before.key):
        assert all(BIRTHDAY not in _codec.encode(r.event).decode() for r in store.read(key))
    assert store.verify().ok


def test_a_retried_append_is_still_recognised_under_a_new_salt(store: EventStore) -> None:
    """Re-appending the same event ids returns the original result, although the retry draws
    a fresh salt."""
    ids = [str(_codec.new_event_id())]
    first = store.append(KEY, [said("once")], event_ids=ids)
    again = store.append(KEY, [said("once")], event_ids=ids)
    assert again.duplicate and again.positions == first.positions
    assert len(store.read(KEY)) == 1


def test_purge_finishes_what_erase_left(store: EventStore) -> None:
    """On PostgreSQL erase leaves the purge (VACUUM FULL) to purge(); on SQLite it is done at
    once. Either way purge() then reports nothing left, and the log still verifies."""
    store.append(KEY, [said(f"born {BIRTHDAY}"), said("kept")])
    receipt = store.erase(KEY, versions=[1])
    assert receipt.purged is (not store.url.startswith("postgresql"))
    assert store.purge() is True
    assert store.verify().ok
    assert store.load_history(KEY)[1] == [HumanMessage("kept")]
