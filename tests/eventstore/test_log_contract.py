"""The store contract, run against every backend through the ``store`` fixture."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    ConcurrencyError,
    DuplicateEventError,
    Event,
    EventStore,
    HistoryCleared,
    HumanMessage,
    InvalidInputError,
    MessageAppended,
    MessageRedacted,
    NotFoundError,
    PayloadErased,
    Record,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
)

KEY = SessionKey(user_id="123", conversation_id="1")


def said(text: str) -> MessageAppended:
    """A MessageAppended event carrying a human message with ``text``."""
    return MessageAppended(message=HumanMessage(text))


def snapshot(store: EventStore, *keys: SessionKey) -> Any:
    """Everything observable about the log and the projections of ``keys``."""
    return (
        store.read_all(),
        store.last_position(),
        [(store.read(k), store.version(k), store.load_history(k)) for k in keys],
    )


def texts(records: list[Record]) -> list[str]:
    """The message texts of MessageAppended records, in order."""
    return [r.event.message.text for r in records if isinstance(r.event, MessageAppended)]


# -- append and read ------------------------------------------------------------------------


def test_append_read_round_trip_keeps_every_envelope_field(store: EventStore) -> None:
    """Appended events come back in order with stream id, versions, ids, positions and events."""
    events: list[Event] = [
        MessageAppended(message=SystemMessage("be brief")),
        said("hi"),
        MessageAppended(message=AIMessage("calling", tool_calls=[
            {"name": "lookup", "args": {"q": "x", "nested": {"n": [1, 2]}}, "id": "call-1"}])),
        MessageAppended(message=ToolMessage("42", tool_call_id="call-1")),
        SessionTagged(added=["vip"]),
        HistoryCleared(reason="reset"),
    ]
    ids = [str(uuid.uuid4()) for _ in events]
    result = store.append(KEY, events, expected_version=0, event_ids=ids)
    assert (result.stream_id, result.version, result.duplicate) == (KEY.stream_id, 6, False)
    assert result.first_version == 1
    records = store.read(KEY)
    assert [r.event for r in records] == events
    assert [r.version for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r.event_id for r in records] == ids
    assert [r.position for r in records] == result.positions
    assert all(r.stream_id == KEY.stream_id and r.key == KEY for r in records)
    assert [r.type for r in records] == ["message_appended"] * 4 + ["session_tagged",
                                                                    "history_cleared"]


def test_unknown_stream_reads_empty_at_version_zero(store: EventStore) -> None:
    """A stream never written to has no events, version 0 and an empty history."""
    assert store.read(KEY) == []
    assert store.version(KEY) == 0
    assert store.load_history(KEY) == (0, [])
    assert store.session(KEY) is None
    assert store.read_all() == []


def test_plain_string_key_means_session_id(store: EventStore) -> None:
    """A key given as a plain string is the same stream as SessionKey(session_id=...)."""
    store.append("abc123", [said("hi")])
    assert texts(store.read(SessionKey(session_id="abc123"))) == ["hi"]
    assert store.version({"session_id": "abc123"}) == 1


def test_stream_chunk_is_stored_as_whole_message(store: EventStore) -> None:
    """An AIMessageChunk is stored and read back as the AIMessage it adds up to."""
    chunk = AIMessageChunk(content="hel") + AIMessageChunk(content="lo")
    store.append(KEY, [MessageAppended(message=chunk)])
    (record,) = store.read(KEY)
    assert isinstance(record.event, MessageAppended)
    assert record.event.message == AIMessage("hello")


def test_empty_append_writes_nothing(store: EventStore) -> None:
    """Appending no events returns the current version and writes nothing."""
    store.append(KEY, [said("a")])
    before = snapshot(store, KEY)
    result = store.append(KEY, [])
    assert (result.version, result.positions) == (1, [])
    assert snapshot(store, KEY) == before


# -- expected_version -------------------------------------------------------------------------


def test_expected_version_none_appends_unconditionally(store: EventStore) -> None:
    """expected_version=None appends whatever version the stream is at."""
    assert store.append(KEY, [said("a")]).version == 1
    assert store.append(KEY, [said("b"), said("c")]).version == 3
    assert store.append(KEY, [said("d")], expected_version=None).version == 4


def test_expected_version_zero_means_empty_stream(store: EventStore) -> None:
    """expected_version=0 succeeds on an empty stream and fails once it has events."""
    assert store.append(KEY, [said("a")], expected_version=0).version == 1
    with pytest.raises(ConcurrencyError):
        store.append(KEY, [said("b")], expected_version=0)


def test_expected_version_must_match_exactly(store: EventStore) -> None:
    """An int expected_version succeeds only when it equals the stream's version."""
    store.append(KEY, [said("a"), said("b")])
    assert store.append(KEY, [said("c")], expected_version=2).version == 3
    for wrong in (0, 1, 2, 4, 100):
        with pytest.raises(ConcurrencyError) as info:
            store.append(KEY, [said("x")], expected_version=wrong)
        assert info.value.stream_id == KEY.stream_id
        assert (info.value.expected_version, info.value.actual_version) == (wrong, 3)


def test_stale_expected_version_writes_nothing(store: EventStore) -> None:
    """A ConcurrencyError leaves read, version, last_position and history unchanged."""
    other = SessionKey(user_id="123", conversation_id="2")
    store.append(KEY, [said("a"), said("b")])
    store.append(other, [said("o")])
    before = snapshot(store, KEY, other)
    with pytest.raises(ConcurrencyError):
        store.append(KEY, [said("lost1"), said("lost2"), HistoryCleared()], expected_version=1)
    assert snapshot(store, KEY, other) == before
    assert store.verify().ok
    # The positions an append would have taken are still free for the next one.
    nxt = store.append(KEY, [said("c")], expected_version=2)
    assert nxt.positions[0] > before[1]


# -- atomicity ----------------------------------------------------------------------------------


def test_failing_append_is_all_or_nothing(store: EventStore) -> None:
    """When one event of an append cannot be stored, none of its events are."""
    store.append(KEY, [said("a")])
    taken = str(uuid.uuid4())
    store.append("other", [said("o")], event_ids=[taken])
    before = snapshot(store, KEY)
    with pytest.raises(DuplicateEventError):
        store.append(KEY, [said("x"), said("y"), said("z")],
                     event_ids=[str(uuid.uuid4()), str(uuid.uuid4()), taken])
    assert snapshot(store, KEY) == before
    assert store.verify().ok


def test_one_append_gets_contiguous_versions_and_increasing_positions(store: EventStore) -> None:
    """The events of one append take consecutive versions and increasing positions."""
    store.append("other", [said("o")])
    result = store.append(KEY, [said(str(i)) for i in range(5)])
    records = store.read(KEY)
    assert [r.version for r in records] == [1, 2, 3, 4, 5]
    assert result.positions == sorted(set(result.positions))
    assert result.positions == [r.position for r in records]


# -- idempotent event ids ---------------------------------------------------------------------


def test_retried_append_returns_original_result(store: EventStore) -> None:
    """Re-appending the same ids and payloads is a no-op that returns the original result."""
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    events = [said("a"), said("b")]
    first = store.append(KEY, events, expected_version=0, event_ids=ids)
    store.append(KEY, [said("c")])
    before = snapshot(store, KEY)
    again = store.append(KEY, events, expected_version=0, event_ids=ids)
    assert again.duplicate is True
    assert (again.stream_id, again.version, again.positions) == (
        first.stream_id, first.version, first.positions)
    assert snapshot(store, KEY) == before


def test_retry_accepts_uuid_objects_and_other_spellings(store: EventStore) -> None:
    """Event ids are compared as UUIDs, so an upper-case or UUID-object retry is a duplicate."""
    ident = uuid.uuid4()
    first = store.append(KEY, [said("a")], event_ids=[str(ident).upper()])
    assert store.read(KEY)[0].event_id == str(ident)
    again = store.append(KEY, [said("a")], event_ids=[ident])  # type: ignore[list-item]
    assert again.duplicate and again.positions == first.positions
    assert store.version(KEY) == 1


def test_same_ids_with_other_payload_raise(store: EventStore) -> None:
    """Reusing ids for a different payload raises DuplicateEventError and writes nothing."""
    ids = [str(uuid.uuid4())]
    store.append(KEY, [said("a")], event_ids=ids)
    before = snapshot(store, KEY)
    with pytest.raises(DuplicateEventError):
        store.append(KEY, [said("changed")], event_ids=ids)
    assert snapshot(store, KEY) == before


def test_same_ids_on_other_stream_raise(store: EventStore) -> None:
    """Reusing ids on another stream raises DuplicateEventError and writes nothing."""
    other = SessionKey(user_id="123", conversation_id="2")
    ids = [str(uuid.uuid4())]
    store.append(KEY, [said("a")], event_ids=ids)
    before = snapshot(store, KEY, other)
    with pytest.raises(DuplicateEventError):
        store.append(other, [said("a")], event_ids=ids)
    assert snapshot(store, KEY, other) == before


def test_partly_reused_ids_raise(store: EventStore) -> None:
    """An append mixing stored and new ids raises DuplicateEventError and writes nothing."""
    old = str(uuid.uuid4())
    store.append(KEY, [said("a")], event_ids=[old])
    before = snapshot(store, KEY)
    with pytest.raises(DuplicateEventError):
        store.append(KEY, [said("a"), said("b")], event_ids=[old, str(uuid.uuid4())])
    assert snapshot(store, KEY) == before


# -- reading ranges ---------------------------------------------------------------------------


def test_read_version_range(store: EventStore) -> None:
    """after_version and until_version select the half-open range (after, until]."""
    store.append(KEY, [said(str(i)) for i in range(1, 8)])
    assert texts(store.read(KEY, after_version=3)) == ["4", "5", "6", "7"]
    assert texts(store.read(KEY, until_version=2)) == ["1", "2"]
    assert texts(store.read(KEY, after_version=2, until_version=5)) == ["3", "4", "5"]
    assert store.read(KEY, after_version=7) == []
    assert store.read(KEY, after_version=5, until_version=5) == []
    assert store.read(KEY, until_version=0) == []
    assert texts(store.read(KEY, until_version=100)) == [str(i) for i in range(1, 8)]


def test_read_until_time(store: EventStore) -> None:
    """until_time keeps exactly the events recorded at or before that moment."""
    for i in range(6):
        store.append(KEY, [said(str(i))])
    records = store.read(KEY)
    for cut in records:
        expected = [r for r in records if r.recorded_at <= cut.recorded_at]
        assert store.read(KEY, until_time=cut.recorded_at) == expected
        plus_two = cut.recorded_at.astimezone(timezone(timedelta(hours=2)))
        assert store.read(KEY, until_time=plus_two) == expected
        assert store.read(KEY, after_version=2, until_time=cut.recorded_at) == [
            r for r in expected if r.version > 2]
    assert store.read(KEY, until_time=records[0].recorded_at - timedelta(seconds=1)) == []
    assert store.read(KEY, until_time=datetime.now(UTC) + timedelta(days=1)) == records


def test_read_all_is_global_order_with_paging(store: EventStore) -> None:
    """read_all returns every stream's events by position; after_position and limit page it."""
    keys = [SessionKey(user_id="u", conversation_id=str(i)) for i in range(3)]
    appended: list[tuple[str, int]] = []
    for round_ in range(4):
        for k in keys:
            result = store.append(k, [said(f"{k.conversation_id}-{round_}-{j}") for j in range(2)])
            appended += [(k.stream_id, v) for v in range(result.first_version, result.version + 1)]
    everything = store.read_all()
    assert [(r.stream_id, r.version) for r in everything] == appended
    positions = [r.position for r in everything]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert store.last_position() == positions[-1]
    assert store.event_count() == len(everything)
    assert store.read_all(after_position=positions[9]) == everything[10:]
    assert store.read_all(limit=5) == everything[:5]
    assert store.read_all(after_position=positions[-1]) == []
    paged: list[Record] = []
    after = 0
    while batch := store.read_all(after_position=after, limit=7):
        paged += batch
        after = batch[-1].position
    assert paged == everything
    assert list(store.iter_all(page=4)) == everything
    for k in keys:
        assert store.read(k) == [r for r in everything if r.stream_id == k.stream_id]


def test_positions_strictly_increase_and_are_never_reused(store: EventStore) -> None:
    """Every append takes positions above every earlier one, even after failures and erasure."""
    seen: list[int] = []
    for i in range(5):
        before = store.last_position()
        result = store.append(f"s{i % 2}", [said("a"), said("b")])
        assert min(result.positions) > before
        seen += result.positions
        with pytest.raises(ConcurrencyError):
            store.append(f"s{i % 2}", [said("stale")], expected_version=0)
    store.erase("s0")
    seen += store.append("s1", [said("c")]).positions
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    all_positions = [r.position for r in store.read_all()]
    assert all_positions == sorted(set(all_positions))
    assert set(seen) <= set(all_positions)


def test_recorded_at_is_aware_utc_and_never_decreases(store: EventStore) -> None:
    """recorded_at is a timezone-aware UTC datetime, non-decreasing within a stream."""
    start = datetime.now(UTC)
    for i in range(5):
        store.append(KEY, [said(str(i)), said(f"{i}b")])
    records = store.read(KEY)
    for r in records:
        assert r.recorded_at.tzinfo is not None
        assert r.recorded_at.utcoffset() == timedelta(0)
        assert r.recorded_at >= start - timedelta(seconds=5)
    times = [r.recorded_at for r in records]
    assert times == sorted(times)


def test_meta_round_trips(store: EventStore) -> None:
    """meta given to append is returned on every record of that append; default is {}."""
    meta = {"run_id": "r-1", "actor": "ünïcode ✓", "n": 3, "f": 1.5, "ok": True, "none": None,
            "nested": {"ids": ["a", "b"], "deep": {"x": []}}}
    store.append(KEY, [said("a"), said("b")], meta=meta)
    store.append(KEY, [said("c")])
    records = store.read(KEY)
    assert [r.meta for r in records] == [meta, meta, {}]


# -- the catalog ------------------------------------------------------------------------------


def test_sessions_lists_newest_activity_first(store: EventStore) -> None:
    """sessions() returns one row per stream ordered by last activity, newest first."""
    keys = [SessionKey(user_id=u, conversation_id=c) for u in ("u1", "u2") for c in ("1", "2")]
    for k in keys:
        store.append(k, [said("hi")])
    store.append(keys[0], [said("again"), MessageAppended(message=AIMessage("yo"))])
    rows = store.sessions()
    assert {r.key for r in rows} == set(keys)
    order = sorted(rows, key=lambda r: (r.last_active, r.stream_id), reverse=True)
    assert rows == order
    newest = next(r for r in rows if r.key == keys[0])
    assert newest.last_active == max(r.last_active for r in rows)
    assert (newest.version, newest.message_count) == (3, 3)
    assert newest.created_at <= newest.last_active
    assert newest.last_active == store.read(keys[0])[-1].recorded_at
    assert newest.stream_id == keys[0].stream_id
    assert store.session(keys[0]) == newest


def test_sessions_filter_by_key_parts(store: EventStore) -> None:
    """Key filters match parts exactly, combine with AND, and never match by prefix."""
    for u in ("u1", "u10", "u2"):
        for c in ("1", "2"):
            store.append(SessionKey(user_id=u, conversation_id=c), [said("x")])
    store.append(SessionKey(user_id="u1"), [said("x")])
    assert {r.key for r in store.sessions(user_id="u1")} == {
        SessionKey(user_id="u1", conversation_id="1"),
        SessionKey(user_id="u1", conversation_id="2"),
        SessionKey(user_id="u1"),
    }
    assert [r.key for r in store.sessions(user_id="u1", conversation_id="2")] == [
        SessionKey(user_id="u1", conversation_id="2")]
    assert len(store.sessions(conversation_id="1")) == 3
    assert store.sessions(user_id="nobody") == []
    assert store.sessions(tenant="u1") == []


def test_sessions_paginate_by_cursor(store: EventStore) -> None:
    """Following each page's last cursor visits every session exactly once, in order."""
    keys = [SessionKey(user_id="p", conversation_id=f"{i:02d}") for i in range(11)]
    for k in keys:
        store.append(k, [said("x")])
    store.append("elsewhere", [said("x")])
    full = store.sessions(user_id="p")
    assert len(full) == 11
    pages: list[list[Any]] = []
    after = None
    while page := store.sessions(user_id="p", limit=3, after=after):
        assert len(page) <= 3
        pages.append(page)
        after = page[-1].cursor
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [r for p in pages for r in p] == full
    assert store.sessions(limit=4) == store.sessions()[:4]


def test_catalog_counts_and_tags_follow_events(store: EventStore) -> None:
    """The catalog row tracks version, current message count and tags."""
    store.append(KEY, [said("a"), said("b"), SessionTagged(added=["x", "y"])])
    info = store.session(KEY)
    assert info is not None
    assert (info.version, info.message_count, info.tags) == (3, 2, ["x", "y"])
    store.append(KEY, [HistoryCleared(), said("c"), SessionTagged(removed=["x"])])
    info = store.session(KEY)
    assert info is not None
    assert (info.version, info.message_count, info.tags) == (6, 1, ["y"])


# -- verify, erase, rebuild -------------------------------------------------------------------


def test_verify_is_ok_on_an_intact_log(store: EventStore) -> None:
    """verify() reports no problem, and counts streams and events, on an untouched log."""
    assert store.verify().ok
    store.append(KEY, [said("a"), said("b")])
    store.append("other", [said("c")], meta={"actor": "me"})
    store.append(KEY, [HistoryCleared()])
    report = store.verify()
    assert report.ok and report.problems == []
    assert (report.streams, report.events) == (2, 4)
    one = store.verify(KEY)
    assert one.ok and one.events == 3


def test_erase_removes_content_and_keeps_verify_ok(store: EventStore) -> None:
    """erase() scrubs every message payload, records MessageRedacted events and verifies."""
    other = SessionKey(user_id="123", conversation_id="2")
    store.append(KEY, [said("secret-1"), MessageAppended(message=AIMessage("secret-2"))])
    store.append(KEY, [said("secret-3")])
    store.append(other, [said("keep")])
    result = store.erase(KEY, reason="user asked")
    assert result.version == 6
    records = store.read(KEY)
    assert [type(r.event) for r in records[:3]] == [PayloadErased] * 3
    assert all(isinstance(r.event, PayloadErased) and r.event.erased_type == "message_appended"
               for r in records[:3])
    assert [r.event for r in records[3:]] == [
        MessageRedacted(version=v, reason="user asked") for v in (1, 2, 3)]
    assert store.load_history(KEY) == (6, [])
    assert store.load_history_at(KEY, version=3) == (3, [])
    assert "secret" not in repr(store.read_all())
    assert texts(store.read(other)) == ["keep"]
    assert store.verify().ok


def test_erase_selected_versions(store: EventStore) -> None:
    """erase(versions=[...]) scrubs only those events; the rest of the history stays."""
    store.append(KEY, [said("a"), said("secret"), said("c")])
    store.erase(KEY, versions=[2])
    assert [m.text for m in store.load_history(KEY)[1]] == ["a", "c"]
    assert isinstance(store.read(KEY)[1].event, PayloadErased)
    assert store.verify().ok
    store.append(KEY, [said("d")])
    assert [m.text for m in store.load_history(KEY)[1]] == ["a", "c", "d"]


def test_erase_unknown_version_or_session_raises(store: EventStore) -> None:
    """erase() of a missing version or session raises NotFoundError and writes nothing."""
    store.append(KEY, [said("a")])
    before = snapshot(store, KEY)
    with pytest.raises(NotFoundError):
        store.erase(KEY, versions=[2])
    with pytest.raises(NotFoundError):
        store.erase(KEY, versions=[0])
    with pytest.raises(NotFoundError):
        store.erase("nobody")
    assert snapshot(store, KEY) == before


@pytest.mark.parametrize("target", ["history_cleared", "message_redacted"])
def test_erase_refuses_events_that_hold_no_content(store: EventStore, target: str) -> None:
    """erase() of a HistoryCleared or MessageRedacted event raises and writes nothing."""
    store.append(KEY, [said("a"), HistoryCleared(), said("b")])
    store.erase(KEY, versions=[1])
    version = {"history_cleared": 2, "message_redacted": 4}[target]
    assert store.read(KEY)[version - 1].type == target
    before = snapshot(store, KEY)
    with pytest.raises(InvalidInputError, match=str(version)):
        store.erase(KEY, versions=[version])
    assert snapshot(store, KEY) == before


def test_erased_clear_or_redaction_keeps_log_and_rebuild_consistent(store: EventStore) -> None:
    """Whatever erase() accepts, the log still verifies and rebuild equals the live history."""
    store.append(KEY, [said("a"), HistoryCleared(), said("b")])
    store.erase(KEY, versions=[1])
    for version in (2, 4):
        try:
            store.erase(KEY, versions=[version])
        except InvalidInputError:
            continue
    live = store.load_history(KEY)
    store.rebuild()
    assert (store.verify().ok, store.load_history(KEY)) == (True, live)


def test_rebuild_gives_the_same_history(store: EventStore) -> None:
    """Dropping and replaying the projections reproduces histories, as-of views and catalog."""
    keys = [SessionKey(user_id="u", conversation_id=str(i)) for i in range(3)]
    store.append(keys[0], [said("a"), MessageAppended(message=AIMessage("b"))])
    store.append(keys[1], [said("c"), SessionTagged(added=["t"])])
    store.append(keys[0], [HistoryCleared(), said("d")])
    store.append(keys[2], [said("e"), said("secret"), said("f")])
    store.erase(keys[2], versions=[2])
    store.append(keys[1], [MessageAppended(message=ToolMessage("r", tool_call_id="1"))])

    def state() -> Any:
        """Histories, every as-of view and the catalog."""
        return (
            [store.load_history(k) for k in keys],
            [store.load_history_at(k, version=v) for k in keys
             for v in range(store.version(k) + 1)],
            store.sessions(),
        )

    before = state()
    assert store.rebuild() == len(store.read_all())
    assert state() == before
    assert store.verify().ok
