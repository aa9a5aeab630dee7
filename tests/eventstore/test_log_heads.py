"""Log heads and proofs on every backend; a version-1 SQLite file migrates in place."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from chatledger.eventstore import (
    EventStore,
    HumanMessage,
    InvalidInputError,
    LogHead,
    MessageAppended,
    NotFoundError,
    _codec,
    open_store,
    verify_proof,
)
from chatledger.eventstore._merkle import EMPTY_ROOT
from chatledger.eventstore.sqlite import _sql as SQL


def said(text: str) -> MessageAppended:
    """A human message event."""
    return MessageAppended(message=HumanMessage(text))


def settled(store: EventStore, size: int) -> LogHead:
    """The head once it covers ``size`` events: on PostgreSQL another client's transaction
    (tests of other modules share the server) may hold the reader horizon back a moment."""
    deadline = time.monotonic() + 30
    head = store.head()
    while head.size < size and time.monotonic() < deadline:
        time.sleep(0.05)
        head = store.head()
    return head


def test_an_empty_log_has_the_empty_head(store: EventStore) -> None:
    """Before any append the head is size 0 with the empty tree's root."""
    head = store.head()
    assert (head.size, head.root, head.position) == (0, EMPTY_ROOT.hex(), 0)
    assert store.verify(against=head).ok


def test_heads_grow_and_old_heads_stay_consistent(store: EventStore) -> None:
    """Each head covers every event so far; the log still extends every earlier head."""
    heads, positions = [], []
    for i in range(5):
        positions += store.append(f"s{i % 2}", [said(f"m{i}"), said(f"n{i}")]).positions
        heads.append(settled(store, 2 * (i + 1)))
    assert [h.size for h in heads] == [2, 4, 6, 8, 10]
    assert heads[-1].position == positions[-1]
    assert len({h.root for h in heads}) == 5
    for head in heads:
        assert store.verify(against=head).ok
    forged = LogHead(size=4, root="ab" * 32, position=positions[3], recorded_at=None)
    report = store.verify(against=forged)
    assert [p.kind for p in report.problems] == ["head"]
    too_big = LogHead(size=11, root=heads[-1].root, position=positions[-1] + 1,
                      recorded_at=None)
    assert [p.kind for p in store.verify(against=too_big).problems] == ["head"]


def test_a_fresh_store_computes_the_same_head(store: EventStore) -> None:
    """A head does not depend on the store object that computed it."""
    store.append("a", [said("x"), said("y"), said("z")])
    head = settled(store, 3)
    with open_store(store.url) if not store.url.endswith(":memory:") else store as again:
        assert again.head() == head


def test_inclusion_proofs_check_out_offline(store: EventStore) -> None:
    """prove(position) gives a proof that verify_proof accepts for that head, and rejects for
    another head or a tampered proof."""
    for i in range(7):
        store.append(f"s{i % 3}", [said(f"m{i}")])
    old = settled(store, 7)
    store.append("s9", [said("later")])
    new = settled(store, 8)
    for record in store.read_all():
        proof = store.prove(record.position)
        assert proof.digest == record.digest
        assert verify_proof(proof, new)
        assert not verify_proof(proof, old)
        if record.position <= old.position:
            assert verify_proof(store.prove(record.position, old), old)
    proof = store.prove(store.read_all()[2].position)
    bad = proof.__class__(**{**_codec.decode_json(_codec.encode(proof)),
                             "digest": "00" * 32})
    assert not verify_proof(bad)


def test_prove_refuses_what_is_not_in_the_head(store: EventStore) -> None:
    """A position with no event, or a head not of this log, is refused with a clear error."""
    last = store.append("a", [said("x")]).positions[-1]
    settled(store, 1)
    with pytest.raises(NotFoundError, match="no event at position"):
        store.prove(last + 10**6)
    with pytest.raises(InvalidInputError, match="position"):
        store.prove(-1)
    with pytest.raises(InvalidInputError, match="root"):
        store.prove(last, LogHead(size=1, root="cd" * 32, position=last, recorded_at=None))
    with pytest.raises(InvalidInputError, match="whole log"):
        store.verify("a", against=store.head())


def test_a_head_round_trips_through_json() -> None:
    """to_json/from_json keep a head exactly; text that is not a head is refused."""
    head = LogHead(size=3, root="0f" * 32, position=9,
                   recorded_at=_codec.parse_time("2026-01-02T03:04:05.000006Z"))
    assert LogHead.from_json(head.to_json()) == head
    for text in ["", "{}", '{"size": 1}', '{"size":1,"root":"xyz","position":1,"recorded_at":null}',
                 '{"size":-1,"root":"' + "0" * 64 + '","position":1,"recorded_at":null}']:
        with pytest.raises(InvalidInputError, match="log head"):
            LogHead.from_json(text)


def _downgrade_to_v1(path: Path) -> None:
    """Rewrite a file as schema version 1 wrote it: no salt column, unsalted digests."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    heads = {}
    for sid, version, position, event_id, type_, at, data, meta in conn.execute(
            "SELECT stream_id, version, position, event_id, type, recorded_at, data, meta "
            "FROM events ORDER BY position").fetchall():
        pdigest = _codec.payload_digest(data.encode())
        digest = _codec.digest_of(position, sid, version, event_id, type_, at, pdigest, meta)
        chain = _codec.chain_of(heads.get(sid, _codec.GENESIS), digest)
        heads[sid] = chain
        conn.execute("UPDATE events SET payload_digest = ?, digest = ?, chain = ?, salt = NULL "
                     "WHERE position = ?", (pdigest, digest, chain, position))
    for sid, chain in heads.items():
        conn.execute("UPDATE streams SET chain = ? WHERE stream_id = ?", (chain, sid))
    conn.execute("ALTER TABLE events DROP COLUMN salt")
    conn.execute(SQL._NO_UPDATE.replace("OR NEW.salt IS NOT NULL", ""))
    conn.execute("UPDATE chatledger_meta SET value = '1' WHERE name = 'schema_version'")
    conn.close()


def test_a_version_1_sqlite_file_migrates_in_place(tmp_path: Path) -> None:
    """Old events keep their unsalted digests and verify; new events are salted; erasing an old
    event works too."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.append("old", [said("one"), said("two")])
    _downgrade_to_v1(path)
    with open_store(url) as store:
        assert store.verify().ok
        store.append("old", [said("three")])
        assert store.verify().ok
        head = store.head()
        assert store.erase("old", versions=[1]).purged
        assert store.verify(against=head).ok
    conn = sqlite3.connect(path)
    salts = conn.execute("SELECT version, salt IS NOT NULL FROM events WHERE stream_id = "
                         "'session_id=old' ORDER BY version").fetchall()
    assert salts == [(1, False), (2, False), (3, True), (4, True)]
    assert conn.execute("SELECT value FROM chatledger_meta WHERE name = 'schema_version'"
                        ).fetchone() == (str(SQL.SCHEMA_VERSION),)
    conn.close()
