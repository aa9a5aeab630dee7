"""The session catalog: filters by key parts, newest first, cursor pages, counts and tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    InvalidInputError,
    InvalidKeyError,
    SessionInfo,
    SessionKey,
    SessionTagged,
)
from chatledger.projections import ChatHistory


def _key(user: int, conversation: int) -> SessionKey:
    return SessionKey(user_id=f"u{user}", conversation_id=f"c{conversation}")


def _wait_past(moment: datetime) -> None:
    """Return once the clock has moved past ``moment``, so the next write is strictly later."""
    while datetime.now(UTC) <= moment:
        pass


@pytest.fixture
def populated(store: EventStore) -> list[SessionKey]:
    """25 sessions over 3 users, written one after another; returned in write order."""
    keys = [_key(i % 3, i) for i in range(25)]
    for i, key in enumerate(keys):
        ChatHistory(key, store).add_messages(
            [HumanMessage(content=f"q{i}"), AIMessage(content=f"a{i}")][: 1 + i % 2])
    return keys


def _is_newest_first(rows: list[SessionInfo]) -> bool:
    order = [(r.last_active, r.stream_id) for r in rows]
    return order == sorted(order, reverse=True)


def test_sessions_lists_every_session_newest_first(
    store: EventStore, populated: list[SessionKey]
) -> None:
    """sessions() returns every session once, ordered by last activity, newest first."""
    rows = store.sessions()
    assert len(rows) == 25
    assert {r.key for r in rows} == set(populated)
    assert _is_newest_first(rows)
    assert rows[0].last_active >= rows[-1].last_active


def test_touching_a_session_moves_it_to_the_front(
    store: EventStore, populated: list[SessionKey]
) -> None:
    """Appending to the oldest session makes it the most recently active one."""
    oldest = store.sessions(limit=100)[-1]
    _wait_past(store.sessions(limit=1)[0].last_active)
    ChatHistory(oldest.key, store).add_user_message("back again")
    rows = store.sessions()
    assert rows[0].key == oldest.key
    assert rows[0].created_at == oldest.created_at
    assert rows[0].last_active > oldest.last_active
    assert rows[0].version == oldest.version + 1
    assert _is_newest_first(rows)


def test_rows_carry_counts_versions_times_and_tags(store: EventStore) -> None:
    """A catalog row holds the key, message count, version, created/last-active times and tags."""
    key = SessionKey(user_id="7", conversation_id="x")
    history = ChatHistory(key, store)
    history.add_messages([HumanMessage(content="q"), AIMessage(content="a")])
    store.append(key, [SessionTagged(added=["vip", "billing"])])
    history.add_user_message("more")
    records = store.read(key)
    [row] = store.sessions(user_id="7")
    assert row == store.session(key)
    assert row.key == key
    assert row.stream_id == key.stream_id
    assert row.message_count == 3
    assert row.version == 4
    assert row.created_at == records[0].recorded_at
    assert row.last_active == records[-1].recorded_at
    assert row.created_at.tzinfo is not None and row.last_active.tzinfo is not None
    assert row.tags == ["billing", "vip"]

    store.append(key, [SessionTagged(added=["closed"], removed=["vip"])])
    history.clear()
    later = store.session(key)
    assert later is not None
    assert later.tags == ["billing", "closed"]
    assert later.message_count == 0
    assert later.version == 6


def test_session_of_an_unknown_key_is_none(store: EventStore) -> None:
    """session(key) is None for a session with no events."""
    assert store.session("nobody") is None


def test_filter_by_one_key_part(store: EventStore, populated: list[SessionKey]) -> None:
    """sessions(user_id=...) returns exactly the sessions with that part."""
    for user in range(3):
        rows = store.sessions(user_id=f"u{user}")
        assert {r.key for r in rows} == {k for k in populated if k.user_id == f"u{user}"}
        assert _is_newest_first(rows)
    assert [r.key for r in store.sessions(conversation_id="c4")] == [_key(1, 4)]


def test_filter_by_several_key_parts(store: EventStore, populated: list[SessionKey]) -> None:
    """Several filters must all match; a combination that matches nothing gives []."""
    assert [r.key for r in store.sessions(user_id="u1", conversation_id="c4")] == [_key(1, 4)]
    assert store.sessions(user_id="u0", conversation_id="c4") == []
    assert store.sessions(user_id="nobody") == []
    assert store.sessions(tenant="t1") == []


def test_filter_needs_the_exact_part_value(store: EventStore) -> None:
    """A filter matches whole values only, and parts are matched by name."""
    ChatHistory(SessionKey(user_id="12", org="12"), store).add_user_message("x")
    ChatHistory(SessionKey(user_id="123"), store).add_user_message("y")
    assert [r.key for r in store.sessions(user_id="12")] == [SessionKey(user_id="12", org="12")]
    assert [r.key for r in store.sessions(org="12")] == [SessionKey(user_id="12", org="12")]
    assert store.sessions(org="123") == []


def test_values_with_separators_filter_and_round_trip(store: EventStore) -> None:
    """Key values holding '=', '/', '%' or '|' are filtered and returned intact."""
    key = SessionKey(user_id="a=b/c%d|e", conversation_id="1")
    ChatHistory(key, store).add_user_message("x")
    ChatHistory(SessionKey(user_id="a", conversation_id="b/c%d|e"), store).add_user_message("y")
    [row] = store.sessions(user_id="a=b/c%d|e")
    assert row.key == key
    page = store.sessions(limit=1)
    rest = store.sessions(limit=5, after=page[-1].cursor)
    assert len(page) + len(rest) == 2


def test_pages_cover_every_session_once(store: EventStore, populated: list[SessionKey]) -> None:
    """Paging 25 sessions 7 at a time with after=page[-1].cursor has no duplicates and no gaps."""
    seen: list[SessionInfo] = []
    sizes = []
    after = None
    while True:
        page = store.sessions(limit=7, after=after)
        if not page:
            break
        sizes.append(len(page))
        seen += page
        after = page[-1].cursor
    assert sizes == [7, 7, 7, 4]
    assert [r.stream_id for r in seen] == [r.stream_id for r in store.sessions(limit=100)]
    assert len({r.stream_id for r in seen}) == 25


def test_pages_within_a_filter(store: EventStore, populated: list[SessionKey]) -> None:
    """Cursor paging composes with a key filter."""
    expected = [r.stream_id for r in store.sessions(user_id="u1")]
    assert len(expected) == 8
    seen = []
    after = None
    while page := store.sessions(limit=3, after=after, user_id="u1"):
        seen += [r.stream_id for r in page]
        after = page[-1].cursor
    assert seen == expected


def test_pages_survive_equal_timestamps(store: EventStore) -> None:
    """Sessions created in one instant (same last_active) still page without loss or repeats."""
    for i in range(10):
        store.append(SessionKey(batch="b", n=f"{i:02d}"), [SessionTagged(added=["t"])])
    rows = store.sessions(limit=100, batch="b")
    moment_rows = sorted(rows, key=lambda r: (r.last_active, r.stream_id), reverse=True)
    assert [r.stream_id for r in rows] == [r.stream_id for r in moment_rows]
    seen = []
    after = None
    while page := store.sessions(limit=3, after=after, batch="b"):
        seen += [r.stream_id for r in page]
        after = page[-1].cursor
    assert seen == [r.stream_id for r in rows]
    assert len(set(seen)) == 10


def test_cursor_after_the_last_row_gives_an_empty_page(
    store: EventStore, populated: list[SessionKey]
) -> None:
    """The page after the last row is empty."""
    rows = store.sessions(limit=100)
    assert store.sessions(after=rows[-1].cursor) == []


def test_message_count_follows_appends_clears_and_forks(store: EventStore) -> None:
    """message_count is the current history's length after appends, clears and forks."""
    history = ChatHistory("s", store)
    history.add_messages([HumanMessage(content="1"), AIMessage(content="2")])
    history.add_user_message("3")
    info = store.session("s")
    assert info is not None and info.message_count == 3 and info.version == 3
    fork = history.fork("f")
    fork.add_ai_message("4")
    info = store.session("f")
    assert info is not None and info.message_count == 4 and info.version == 2
    history.clear()
    info = store.session("s")
    assert info is not None and info.message_count == 0 and info.version == 4
    assert store.sessions(session_id="f") == [store.session("f")]


@pytest.mark.parametrize("limit", [0, -1, 1.5, "7"])
def test_bad_limit(store: EventStore, limit: object) -> None:
    """A limit that is not a positive int is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="limit"):
        store.sessions(limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("cursor", ["", "no-separator", "2024-01-01T00:00:00.000000Z|"])
def test_bad_cursor(store: EventStore, cursor: str) -> None:
    """A malformed cursor is an InvalidInputError."""
    with pytest.raises(InvalidInputError, match="cursor"):
        store.sessions(after=cursor)


def test_bad_filter_value(store: EventStore) -> None:
    """A filter value that could never be a key part is an InvalidKeyError naming the part."""
    with pytest.raises(InvalidKeyError, match="user_id"):
        store.sessions(user_id="")
