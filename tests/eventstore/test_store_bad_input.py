"""Bad input raises a clear chatledger error naming what is wrong, and leaves data untouched."""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    InvalidInputError,
    InvalidKeyError,
    MessageAppended,
    RunRecorded,
    SessionKey,
    SessionTagged,
    StoreError,
    SystemMessage,
    ToolMessage,
    open_store,
)

KEY = SessionKey(user_id="123", conversation_id="1")


def said(text: str) -> MessageAppended:
    """A MessageAppended event carrying a human message with ``text``."""
    return MessageAppended(message=HumanMessage(text))


@pytest.fixture
def seeded(store: EventStore) -> EventStore:
    """A store with two events already in KEY."""
    store.append(KEY, [said("a"), said("b")])
    return store


def unchanged(store: EventStore) -> Any:
    """What must not change when a call is rejected."""
    return store.read_all(), store.last_position(), store.load_history(KEY), store.sessions()


# -- append ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "events",
    [
        [HumanMessage("a message is not an event")],
        [{"type": "message_appended", "message": {"type": "human", "content": "x"}}],
        [said("ok"), "text"],
        [said("ok"), None],
        [said("ok"), HumanMessage("late")],
        said("a single event, not a list"),
        HumanMessage("a single message"),
        "abc",
        None,
        42,
        [MessageAppended(message="not a message")],  # type: ignore[arg-type]
        [RunRecorded(run_id=7, status="ok")],  # type: ignore[arg-type]
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_events_raise_and_write_nothing(seeded: EventStore, events: Any) -> None:
    """Items that are not well-formed events raise InvalidInputError; nothing is written."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError):
        seeded.append(KEY, events)
    assert unchanged(seeded) == before
    assert seeded.verify().ok


def test_event_ids_count_mismatch_raises(seeded: EventStore) -> None:
    """A different number of event ids than events raises InvalidInputError, naming both."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match="1 event ids for 2 events"):
        seeded.append(KEY, [said("x"), said("y")], event_ids=[str(uuid.uuid4())])
    with pytest.raises(InvalidInputError):
        seeded.append(KEY, [said("x")], event_ids=[])
    assert unchanged(seeded) == before


def test_event_id_repeated_within_one_append_raises(seeded: EventStore) -> None:
    """The same id twice in one call is the caller's mistake, named as such (not "already
    stored"); nothing is written."""
    before = unchanged(seeded)
    same = str(uuid.uuid4())
    with pytest.raises(InvalidInputError, match=f"event_ids repeat {same}"):
        seeded.append(KEY, [said("x"), said("y")], event_ids=[same, same.upper()])
    assert unchanged(seeded) == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "1234", 5, None])
def test_non_uuid_event_id_raises(seeded: EventStore, bad_id: Any) -> None:
    """An event id that is not a UUID raises InvalidInputError naming it; nothing is written."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match="UUID"):
        seeded.append(KEY, [said("x"), said("y")], event_ids=[str(uuid.uuid4()), bad_id])
    assert unchanged(seeded) == before


@pytest.mark.parametrize("meta", [{"x": object()}, {"x": {1j}}, {"when": [lambda: 1]}])
def test_meta_not_json_raises(seeded: EventStore, meta: dict[str, Any]) -> None:
    """meta that JSON cannot carry raises InvalidInputError; nothing is written."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match="meta"):
        seeded.append(KEY, [said("x")], meta=meta)
    assert unchanged(seeded) == before


def test_meta_must_be_a_mapping(seeded: EventStore) -> None:
    """meta that is not a dict (a list, a string, a number) raises InvalidInputError."""
    before = unchanged(seeded)
    for meta in (["a"], "text", 3):
        with pytest.raises(InvalidInputError, match="meta"):
            seeded.append(KEY, [said("x")], meta=meta)  # type: ignore[arg-type]
    assert unchanged(seeded) == before


@pytest.mark.parametrize("version", [-1, -100, True, "1", 1.0])
def test_bad_expected_version_raises(seeded: EventStore, version: Any) -> None:
    """A negative or non-int expected_version raises InvalidInputError; nothing is written."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match="expected_version"):
        seeded.append(KEY, [said("x")], expected_version=version)
    assert unchanged(seeded) == before


# -- reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: s.read(KEY, after_version=-1), "after_version"),
        (lambda s: s.read(KEY, until_version=-1), "until_version"),
        (lambda s: s.read(KEY, after_version="2"), "after_version"),
        (lambda s: s.read_all(after_position=-1), "after_position"),
        # None is no start: it would read nothing where 0 reads everything
        (lambda s: s.read(KEY, after_version=None), "after_version"),
        (lambda s: s.read_all(after_position=None), "after_position"),
        (lambda s: list(s.iter_all(after_position=None)), "after_position"),
        (lambda s: s.read_all(limit=0), "limit"),
        (lambda s: s.read_all(limit=-5), "limit"),
        (lambda s: s.load_history_at(KEY, version=-1), "version"),
        (lambda s: s.load_history_at(KEY), "version"),
        (lambda s: s.sessions(limit=0), "limit"),
        (lambda s: s.sessions(after="no cursor"), "cursor"),
    ],
)
def test_bad_read_arguments_raise(seeded: EventStore, call: Any, named: str) -> None:
    """Negative versions, bad limits and cursors raise InvalidInputError naming the argument."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match=named):
        call(seeded)
    assert unchanged(seeded) == before


def test_naive_datetimes_raise(seeded: EventStore) -> None:
    """A datetime without a timezone raises InvalidInputError naming the argument."""
    naive = datetime.now() + timedelta(days=1)
    with pytest.raises(InvalidInputError, match="until_time"):
        seeded.read(KEY, until_time=naive)
    with pytest.raises(InvalidInputError, match="time"):
        seeded.load_history_at(KEY, time=naive)
    with pytest.raises(InvalidInputError, match="until_time"):
        seeded.read(KEY, until_time="2024-01-01")  # type: ignore[arg-type]


def test_bad_keys_raise(seeded: EventStore) -> None:
    """Appending under a malformed key raises InvalidKeyError; nothing is written."""
    before = unchanged(seeded)
    for bad in ({"user_id": ""}, {"user_id": 3}, {"bad-name": "x"}, {}, 3.5):
        with pytest.raises(InvalidKeyError):
            seeded.append(bad, [said("x")])  # type: ignore[arg-type]
    assert unchanged(seeded) == before


# -- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: HumanMessage(5),  # type: ignore[arg-type]
        lambda: SystemMessage(content=None),  # type: ignore[arg-type]
        lambda: AIMessage(content=[1, 2]),  # type: ignore[list-item]
        lambda: HumanMessage(content={"text": "x"}),  # type: ignore[arg-type]
        lambda: HumanMessage("x", name=3),  # type: ignore[arg-type]
        lambda: HumanMessage("x", id=3),  # type: ignore[arg-type]
        lambda: AIMessage("x", tool_calls=[{"args": {}}]),
        lambda: AIMessage("x", tool_calls=[{"name": "f", "args": "not a dict"}]),
        lambda: AIMessage("x", tool_calls={"name": "f"}),  # type: ignore[arg-type]
        lambda: ToolMessage("x", tool_call_id="1", status="maybe"),
    ],
)
def test_bad_message_content_raises(build: Any) -> None:
    """A message with non-text content or malformed fields raises InvalidInputError."""
    with pytest.raises(InvalidInputError):
        build()


def test_message_altered_after_construction_is_rejected(seeded: EventStore) -> None:
    """A message whose content was set to an int after construction is not stored."""
    message = HumanMessage("fine")
    message.content = 5  # type: ignore[assignment]
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError):
        seeded.append(KEY, [MessageAppended(message=message)])
    assert unchanged(seeded) == before


# -- opening a database ---------------------------------------------------------------------


def test_non_sqlite_file_raises_and_is_not_touched(tmp_path: Path) -> None:
    """A file of random bytes raises StoreError and its bytes stay exactly the same."""
    path = tmp_path / "random.db"
    data = os.urandom(8192)
    path.write_bytes(data)
    with pytest.raises(StoreError, match=r"random\.db"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.db"]


def test_text_file_raises_and_is_not_touched(tmp_path: Path) -> None:
    """A text file given as the database raises StoreError and stays unchanged."""
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError):
        open_store(str(path))
    assert path.read_bytes() == before


def test_corrupt_sqlite_file_raises(tmp_path: Path) -> None:
    """A file with a valid SQLite header followed by garbage raises StoreError."""
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(16384))
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{path}")


def test_damaged_chatledger_file_raises(tmp_path: Path) -> None:
    """A real chatledger database whose pages were overwritten raises StoreError on open."""
    path = tmp_path / "damaged.db"
    with open_store(f"sqlite:///{path}") as store:
        store.append(KEY, [said("x" * 100) for _ in range(50)])
    raw = bytearray(path.read_bytes())
    raw[100:] = os.urandom(len(raw) - 100)
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError):
        store = open_store(f"sqlite:///{path}")
        store.read_all()


def foreign_database(path: Path) -> bytes:
    """Create another application's SQLite database with an 'events' table; return its bytes."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    conn.execute("INSERT INTO events (what) VALUES ('theirs')")
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_foreign_sqlite_database_raises(tmp_path: Path) -> None:
    """A SQLite database with its own 'events' table raises StoreError naming the table."""
    path = tmp_path / "other.db"
    foreign_database(path)
    with pytest.raises(StoreError, match="events"):
        open_store(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT what FROM events").fetchall() == [("theirs",)]
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["events"]
    conn.close()


def test_foreign_sqlite_database_is_not_touched(tmp_path: Path) -> None:
    """A rejected foreign SQLite database keeps its exact bytes (journal mode included)."""
    path = tmp_path / "other.db"
    before = foreign_database(path)
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_missing_directory_raises_naming_the_path(tmp_path: Path) -> None:
    """A path whose directory does not exist raises StoreError naming it, creating nothing."""
    path = tmp_path / "no" / "such" / "dir" / "log.db"
    with pytest.raises(StoreError, match="no/such/dir"):
        open_store(f"sqlite:///{path}")
    assert not (tmp_path / "no").exists()


def writable_despite_mode(directory: Path) -> bool:
    """True when a file can be created in ``directory`` whatever its mode (e.g. as root)."""
    probe = directory / "probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def test_unwritable_location_raises(tmp_path: Path) -> None:
    """A database path that cannot be created raises StoreError naming the path on the first
    append (opening alone creates nothing)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if writable_despite_mode(locked):  # root ignores the mode: use a read-only filesystem
            path = Path("/proc/chatledger-test.db")
        else:
            path = locked / "log.db"
        store = open_store(f"sqlite:///{path}")
        assert store.read("s") == []
        with pytest.raises(StoreError, match=re.escape(str(path))):
            store.append("s", [MessageAppended(message=HumanMessage("hi"))])
        assert not path.exists()
    finally:
        locked.chmod(0o700)


def test_parent_is_a_file_raises(tmp_path: Path) -> None:
    """A path whose parent is a regular file raises StoreError naming the path."""
    parent = tmp_path / "a-file"
    parent.write_text("x")
    with pytest.raises(StoreError, match="a-file"):
        open_store(f"sqlite:///{parent / 'log.db'}")
    assert parent.read_text() == "x"


def test_directory_as_database_raises(tmp_path: Path) -> None:
    """A directory given as the database file raises StoreError."""
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{tmp_path}")


@pytest.mark.parametrize(
    "url", ["mysql://user:secret@host/db", "mongodb://localhost", "ftp://x", "sqlite://", "sqlite:///"]
)
def test_unknown_or_empty_url_raises(url: str) -> None:
    """An unknown scheme or a SQLite URL without a path raises StoreError, hiding passwords."""
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_bad_durability_raises(tmp_path: Path) -> None:
    """An unknown durability raises InvalidInputError naming it."""
    with pytest.raises(InvalidInputError, match="durability"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}", durability="sometimes")


def test_closed_store_raises(tmp_path: Path) -> None:
    """Using a store after close raises StoreError."""
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append(KEY, [said("x")])
    with pytest.raises(StoreError, match="closed"):
        store.read(KEY)


@pytest.mark.parametrize("versions", ["2", [2, "3"], [True], 2])
def test_erase_versions_must_be_ints(seeded: EventStore, versions: Any) -> None:
    """Erasing versions that are not a list of ints raises InvalidInputError naming them (a
    string is not read as its characters); nothing is erased."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match="versions must be a list of ints"):
        seeded.erase(KEY, versions=versions)
    assert unchanged(seeded) == before


def test_sqlite_url_with_a_query_raises_and_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``?mode=ro`` is refused, naming the query, instead of becoming part of a new file's
    name."""
    monkeypatch.chdir(tmp_path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"has a query \('\?mode=ro'\)"):
            open_store("sqlite:///q.db?mode=ro", readonly=readonly).append(KEY, [said("x")])
    assert list(tmp_path.iterdir()) == []


def test_non_ledger_hints_at_import_only_for_langchain_databases(tmp_path: Path) -> None:
    """The import hint appears for a LangChain message_store database, not for any file."""
    for table, hinted in (("message_store", True), ("things", False)):
        path = tmp_path / f"{table}.db"
        conn = sqlite3.connect(path)
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
        conn.commit()
        conn.close()
        with pytest.raises(StoreError, match=table) as caught:
            open_store(f"sqlite:///{path}").read_all()
        assert ("chatledger import langchain-sqlite" in str(caught.value)) is hinted


@pytest.mark.parametrize(("tags", "named"), [
    ({"added": [""]}, "non-empty"), ({"added": ["ok", "x\x1b[31mred"]}, "control character"),
    ({"removed": ["y" * 600]}, "600 characters"), ({"added": ["a\nb"]}, "control character"),
])
def test_bad_tags_raise_and_write_nothing(seeded: EventStore, tags: dict[str, list[str]],
                                          named: str) -> None:
    """Tags follow a key part's rules (they are shown and filtered as they are): an empty one,
    one with a control character or one too long raises, naming it; nothing is written."""
    before = unchanged(seeded)
    with pytest.raises(InvalidInputError, match=named):
        seeded.append(KEY, [SessionTagged(**tags)])
    assert unchanged(seeded) == before
