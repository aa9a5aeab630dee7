"""PostgreSQL: the one-call append (chatledger_append_messages) and the general path agree.

Appends that only add messages to an existing session run as one server-side call, which
computes digests and chain links in SQL; everything else runs the client-side plan. Both must
write the same rows, and every digest must be the one the client's formula gives.
"""

from __future__ import annotations

from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    ConcurrencyError,
    HistoryCleared,
    HumanMessage,
    MessageAppended,
    SessionKey,
    SessionTagged,
    ToolMessage,
    _codec,
    open_store,
)
from chatledger.eventstore._append import Prepared, stamp
from chatledger.eventstore._projection import InsertRows, prepared_steps, projection_ops
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import at_once

pytestmark = pytest.mark.postgres

TRICKY = ["plain", "üñíçødé ✓ 🦜", "quote ' and \" and \\ backslash", "tab\tnew\nline",
          "unit\x1fseparator", "{\"json\": [1, 2]}", "%s %(name)s $1",
          # the one call travels as a string with its values bound on the client
          "'); DROP TABLE events; --", "$$ $tag$ E'\\x00' ;COMMIT; ROLLBACK;", "\\'\\\\''"]


class PathSpy:
    """Counts appends that took the general (client-side plan) path."""

    def __init__(self, store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.general = 0
        run = store._run

        def counting(action: str, plan: Any) -> Any:
            if action == "append":
                self.general += 1
            return run(action, plan)
        monkeypatch.setattr(store, "_run", counting)


def _turn(i: int, text: str) -> list[MessageAppended]:
    return [MessageAppended(message=HumanMessage(f"{text} q{i}", id=f"h{i}")),
            MessageAppended(message=AIMessage(f"{text} a{i}", name=text[:8]))]


def test_one_call_appends_store_the_digests_the_client_computes(
        pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages with every awkward character: each stored digest equals _codec.digest_of."""
    key = SessionKey(user_id="ü", conversation_id="1")
    pg.append(key, [MessageAppended(message=HumanMessage("first"))])  # creates the session
    spy = PathSpy(pg, monkeypatch)
    for i, text in enumerate(TRICKY):
        result = pg.append(key, _turn(i, text), meta={"run_id": text, "actor": "tést"},
                           expected_version=1 + 2 * i)
        assert result.version == 3 + 2 * i
    assert spy.general == 0  # every one of those went through the one-call path
    records = pg.read(key)
    assert [r.event for r in records[1:]] == [e for i, t in enumerate(TRICKY) for e in _turn(i, t)]
    assert [r.meta["run_id"] for r in records[1:]] == [t for t in TRICKY for _ in range(2)]
    chain = _codec.GENESIS
    for record, stored in zip(records, _raw_rows(pg, key.stream_id), strict=True):
        position, event_id, type_, recorded_at, payload_digest, meta, digest, link = stored
        assert digest == _codec.digest_of(position, key.stream_id, record.version, event_id,
                                          type_, recorded_at, payload_digest, meta)
        chain = _codec.chain_of(chain, digest)
        assert link == chain
    assert pg.verify().ok
    assert pg.load_history(key)[1][-2:] == [e.message for e in _turn(len(TRICKY) - 1,
                                                                      TRICKY[-1])]


_ROW = ("stream_id, version, position, event_id, type, recorded_at, data, meta, payload_digest, "
        "digest, chain, salt")


def _head(store: PostgresStore, sid: str) -> tuple[Any, ...]:
    return store._fetch("read", "SELECT version, chain, updated_at, message_count FROM streams "
                                "WHERE stream_id = %s", (sid,))[0]


@pytest.mark.parametrize("future", [False, True], ids=["clock", "clamped"])
def test_one_call_append_writes_the_rows_stamp_defines(
        pg: PostgresStore, monkeypatch: pytest.MonkeyPatch, future: bool) -> None:
    """Row for row, the PL/pgSQL append writes what the Python definition (``stamp`` and the
    projection's operations) gives for the same head, position and time, the clamp of
    ``recorded_at`` to the stream's last time included."""
    key = SessionKey(user_id="ü", conversation_id="1")
    pg.append(key, [MessageAppended(message=HumanMessage("first"))])
    sid = key.stream_id
    if future:  # a clock that went back: the stream's last append looks later than now
        pg._fetch("write", "UPDATE streams SET updated_at = '2999-01-01T00:00:00.000000Z' "
                           "WHERE stream_id = %s RETURNING 1", (sid,))
    spy = PathSpy(pg, monkeypatch)
    for i, text in enumerate(TRICKY):
        version, chain, updated_at, count = _head(pg, sid)
        result = pg.append(key, _turn(i, text), meta={"run_id": text})
        rows = pg._fetch("read", f"SELECT {_ROW} FROM events WHERE stream_id = %s AND "
                                 "version > %s ORDER BY version", (sid, version))
        prepared = [Prepared(event=e.event, type=r[4], data=r[6], payload_digest=r[8],
                             event_id=r[3], salt=r[11])
                    for e, r in zip(pg.read(key)[version:], rows, strict=True)]
        assert all(p.payload_digest == _codec.payload_digest(p.data.encode(), p.salt)
                   for p in prepared)
        expected = stamp(sid, prepared, rows[0][7], version=version, chain=chain,
                         first_position=rows[0][2], now=_codec.now_text(), updated_at=updated_at)
        if not future:  # the server's clock is not ours: take its time, check the rest
            expected = stamp(sid, prepared, rows[0][7], version=version, chain=chain,
                             first_position=rows[0][2], now=rows[0][5], updated_at=updated_at)
        assert [tuple(r) for r in rows] == expected.rows
        assert result.positions == expected.positions
        assert _head(pg, sid) == (expected.version, expected.chain, expected.recorded_at,
                                  count + 2)
        ops, added = projection_ops(sid, prepared_steps(prepared, version + 1))
        history = pg._fetch("read", "SELECT stream_id, version, idx, message FROM history "
                                    "WHERE stream_id = %s AND version > %s ORDER BY version, idx",
                            (sid, version))
        assert ops == [InsertRows([tuple(h) for h in history])] and added == 2
    assert spy.general == 0
    if future:
        assert {r.recorded_at.year for r in pg.read(key)[1:]} == {2999}


def _raw_rows(store: PostgresStore, sid: str) -> list[tuple[Any, ...]]:
    return store._fetch("read", "SELECT position, event_id, type, recorded_at, payload_digest, "
                                "meta, digest, chain FROM events WHERE stream_id = %s "
                                "ORDER BY version", (sid,))


def _snapshot(store: PostgresStore, key: SessionKey) -> dict[str, Any]:
    info = store.session(key)
    assert info is not None
    return {"events": [(r.version, r.type, r.event) for r in store.read(key)],
            "history": store.load_history(key),
            "at": [store.load_history_at(key, version=v) for v in range(info.version + 1)],
            "catalog": (info.version, info.message_count, info.tags)}


def test_both_paths_write_the_same_session(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same appends through the one-call path and through the plan give equal sessions."""
    steps: list[list[Any]] = [
        [MessageAppended(message=HumanMessage("hi"))],
        _turn(1, "x"),
        [MessageAppended(message=AIMessage("", tool_calls=[
            {"id": "c1", "name": "lookup", "args": {"q": "ü"}}]))],
        [MessageAppended(message=ToolMessage("42", tool_call_id="c1"))],
        [HistoryCleared()],
        _turn(2, "after clear"),
        [SessionTagged(added=["t"])],
        _turn(3, "y"),
    ]
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        spy = PathSpy(store, monkeypatch)
        for step in steps:
            store.append("fast", step)
        # the clear and the tag take the plan; the first append (a new session) does not
        assert spy.general == 2
        monkeypatch.setattr("chatledger.eventstore.postgres._appending.fast_append",
                            lambda *a, **k: None)
        for step in steps:
            store.append("plan", step)
        assert spy.general == 2 + len(steps)  # every one of these took the plan
        assert _snapshot(store, SessionKey.coerce("fast")) == _snapshot(
            store, SessionKey.coerce("plan"))
        assert store.verify().ok


def test_a_stale_expected_version_on_the_one_call_path_writes_nothing(
        pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """ConcurrencyError names the expected and actual versions; the session is unchanged."""
    pg.append("s", _turn(0, "x"))
    spy = PathSpy(pg, monkeypatch)
    with pytest.raises(ConcurrencyError) as caught:
        pg.append("s", _turn(1, "x"), expected_version=1)
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    assert spy.general == 0
    assert pg.version("s") == 2 and len(pg.read("s")) == 2
    assert pg.load_history("s")[0] == 2


def test_a_lagging_session_falls_back_and_catches_up(url: str) -> None:
    """After appends by a projections=False store, the next append projects everything."""
    with open_store(url, projections=False) as raw, open_store(url) as projecting:
        raw.append("lag", _turn(0, "raw"))
        raw.append("lag", _turn(1, "raw"))  # the one-call path, projection left alone
        assert projecting.stats()["projected_messages"] == 0
        projecting.append("lag", _turn(2, "projected"))
        assert projecting.load_history("lag") == (6, [e.message for i in range(3)
                                                      for e in _turn(i, "raw" if i < 2
                                                                     else "projected")])
        assert projecting.catch_up() == 0
        assert projecting.verify().ok


def _catalog(store: PostgresStore, sid: str) -> tuple[Any, ...]:
    """The session's catalog row and key parts, as stored."""
    row = store._fetch("read", "SELECT key, version, chain, created_at = updated_at, "
                               "message_count, cleared_version, tags, projected_version "
                               "FROM streams WHERE stream_id = %s", (sid,))
    parts = store._fetch("read", "SELECT name, value FROM stream_keys WHERE stream_id = %s "
                                 "ORDER BY name", (sid,))
    return tuple(row[0]), [tuple(p) for p in parts]


@pytest.mark.parametrize("projections", [True, False], ids=["projecting", "projections-off"])
def test_a_new_session_starts_in_one_call_as_the_plan_starts_it(
        url: str, monkeypatch: pytest.MonkeyPatch, projections: bool) -> None:
    """A session's first append is the one call too: its catalog row and key parts are those
    the plan writes, and the session is found by each key part."""
    awkward = "quote ' \" \\ ü 🦜 = , %s"
    fast = SessionKey(user_id=awkward, conversation_id="fast", tenant="{\"a\": 1}")
    plan = SessionKey(user_id=awkward, conversation_id="plan", tenant="{\"a\": 1}")
    with open_store(url, projections=projections) as store:
        assert isinstance(store, PostgresStore)
        spy = PathSpy(store, monkeypatch)
        result = store.append(fast, _turn(0, "first"), expected_version=0)
        assert spy.general == 0 and result.version == 2
        monkeypatch.setattr("chatledger.eventstore.postgres._appending.fast_append",
                            lambda *a, **k: None)
        store.append(plan, _turn(0, "first"), expected_version=0)
        assert spy.general == 1
        (key_f, *head_f), parts_f = _catalog(store, fast.stream_id)
        (_, *head_p), parts_p = _catalog(store, plan.stream_id)
        assert _codec.decode_json(key_f) == fast.parts and key_f == _codec.encode(fast.parts).decode()
        assert head_f[0] == head_p[0] == 2 and head_f[2:] == head_p[2:]  # chains differ (ids)
        assert head_f[3] == (2 if projections else 0)
        assert parts_f == sorted(fast.parts.items())
        assert [p for p in parts_p if p[0] != "conversation_id"] == \
            [p for p in parts_f if p[0] != "conversation_id"]
        found = store.sessions(user_id=awkward)
        assert {s.stream_id for s in found} == {fast.stream_id, plan.stream_id}
        assert store.sessions(conversation_id="fast")[0].key == fast
        assert store.load_history(fast)[1] == [e.message for e in _turn(0, "first")]
        assert store.verify().ok


def test_a_new_session_with_a_stale_expected_version_is_not_created(
        pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """expected_version=3 on a session that does not exist: ConcurrencyError (expected 3,
    actual 0) from the one call, and no row of any table names the session."""
    spy = PathSpy(pg, monkeypatch)
    with pytest.raises(ConcurrencyError) as caught:
        pg.append("ghost", _turn(0, "x"), expected_version=3)
    assert (caught.value.expected_version, caught.value.actual_version) == (3, 0)
    assert spy.general == 0
    assert pg.session("ghost") is None and pg.read("ghost") == []
    assert pg.sessions(session_id="ghost") == [] and pg.event_count() == 0


def test_first_appends_racing_on_one_new_session_all_land_once(url: str) -> None:
    """8 stores (own connections) first-appending to one new session at the same moment:
    every append lands, versions 1..16 in order, one catalog row, each key part once."""
    n = 8
    key = SessionKey(user_id="u", conversation_id="race")
    with open_store(url, create=True):
        pass
    stores = [open_store(url) for _ in range(n)]
    errors = at_once(lambda i: stores[i].append(key, _turn(i, f"w{i}")), n)
    try:
        assert errors == []
        store = stores[0]
        records = store.read(key)
        assert [r.version for r in records] == list(range(1, 2 * n + 1))
        assert [r.position for r in records] == sorted(r.position for r in records)
        assert len(store.load_history(key)[1]) == 2 * n
        _, parts = _catalog(store, key.stream_id)
        assert parts == sorted(key.parts.items())
        info = store.session(key)
        assert info is not None and (info.version, info.message_count) == (2 * n, 2 * n)
        assert store.verify().ok
    finally:
        for s in stores:
            s.close()
