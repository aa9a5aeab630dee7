"""SQLite positions come from the log itself (max(position)), not from a counter row.

An append writes no checkpoint row while the projection is current; positions continue where
the log ends, also in files written by schema 1 (which kept a 'log' counter row), and a
rolled-back append hands its positions to the next one, since no reader ever saw them.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from chatledger.eventstore import (
    DuplicateEventError,
    HumanMessage,
    MessageAppended,
    open_store,
)
from chatledger.eventstore.sqlite import SQLiteStore

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ledger-2026-11.db"


def _events(*texts: str) -> list[MessageAppended]:
    return [MessageAppended(message=HumanMessage(content=t)) for t in texts]


def test_a_schema_1_file_continues_its_positions(tmp_path: Path) -> None:
    """A file written with the 'log' counter row appends after its last position, projected."""
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with open_store(f"sqlite:///{path}") as store:
        last = store.last_position()
        assert last == 7
        result = store.append("fixture", _events("a", "b"))
        assert result.positions == [8, 9]
        assert store.last_position() == 9
        loaded = store.load_history("fixture")
        store.rebuild()
        assert store.load_history("fixture") == loaded
        assert loaded[1][-2:] == [HumanMessage(content="a"), HumanMessage(content="b")]
        assert store.verify().ok
    with closing(sqlite3.connect(path)) as raw:
        names = [r[0] for r in raw.execute("SELECT name FROM checkpoints")]
        assert names == ["history"]
        assert raw.execute("SELECT value FROM chatledger_meta WHERE name = 'schema_version'"
                           ).fetchone() == ("3",)


def test_a_rolled_back_append_leaves_no_gap(db_url: str) -> None:
    """An append that fails writes nothing; the next one takes the positions it would have."""
    with open_store(db_url) as store:
        taken = str(uuid.uuid4())
        store.append("s", _events("a"), event_ids=[taken])
        with pytest.raises(DuplicateEventError):
            store.append("t", _events("b", "c"), event_ids=[str(uuid.uuid4()), taken])
        assert store.append("t", _events("d")).positions == [2]
        assert [r.position for r in store.read_all()] == [1, 2]
        assert store.event_count() == 2


def test_a_projecting_append_writes_no_checkpoint(db_url: str) -> None:
    """While the projection is current, appends leave the checkpoints table alone."""
    with open_store(db_url) as store:
        assert isinstance(store, SQLiteStore)
        store.append("s", _events("a"))
        conn = store._conn
        conn.execute("CREATE TEMP TABLE touched (name TEXT)")
        conn.execute("CREATE TEMP TRIGGER watch AFTER UPDATE ON main.checkpoints "
                     "BEGIN INSERT INTO touched VALUES (NEW.name); END")
        store.append("s", _events("b", "c"))
        store.append("t", _events("d"))
        assert conn.execute("SELECT count(*) FROM touched").fetchone() == (0,)
        assert store.load_history("s")[1] == [HumanMessage(content=t) for t in "abc"]


def test_projection_less_appends_are_applied_once(db_url: str) -> None:
    """Appends by a projections=False store are projected by the next projecting append."""
    with open_store(db_url) as store:
        store.append("s", _events("a"))
        with SQLiteStore(db_url, projections=False) as bulk:
            bulk.append("s", _events("b"))
            bulk.append("s", _events("c"))
        store.append("s", _events("d"))
        assert store.load_history("s")[1] == [HumanMessage(content=t) for t in "abcd"]
        assert store.catch_up() == 0
        before = store.load_history("s")
        store.rebuild()
        assert store.load_history("s") == before
