"""Opening never writes: read-only opens, foreign and empty files refused untouched, explicit
creation, and reads that never wait for the write lock."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatledger.eventstore import (
    HumanMessage,
    MessageAppended,
    NotFoundError,
    StoreError,
    open_store,
)
from tests.pgsupport import postgres_schema_url, postgres_test_schema, postgres_url

HI = [MessageAppended(message=HumanMessage("hi"))]


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ledger(path: Path, sessions: int = 2) -> Path:
    """A closed ledger file holding ``sessions`` sessions of one message each."""
    with open_store(f"sqlite:///{path}") as store:
        for i in range(sessions):
            store.append(f"s{i}", HI)
    return path


def langchain_file(path: Path) -> Path:
    """A LangChain ``SQLChatMessageHistory`` database, as LangChain creates it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE message_store (id INTEGER PRIMARY KEY, session_id TEXT, "
                 "message TEXT)")
    conn.execute("INSERT INTO message_store (session_id, message) VALUES ('1', "
                 "'{\"type\": \"human\", \"data\": {\"content\": \"hi\"}}')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("readonly", [True, False])
def test_a_langchain_file_is_refused_and_left_byte_identical(tmp_path: Path,
                                                              readonly: bool) -> None:
    """Opening a foreign SQLite file, to read or to write, is a StoreError and changes no byte."""
    path = langchain_file(tmp_path / "memory.db")
    before = digest(path)
    with pytest.raises(StoreError, match=r"not a chatledger database.*message_store"):
        open_store(f"sqlite:///{path}", readonly=readonly)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["memory.db"]


@pytest.mark.parametrize("readonly", [True, False])
def test_an_empty_file_is_refused_and_stays_empty(tmp_path: Path, readonly: bool) -> None:
    """A 0-byte file is not a ledger: refused by reads and writes, and still 0 bytes after."""
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreError, match="empty file"):
        open_store(f"sqlite:///{path}", readonly=readonly)
    assert path.stat().st_size == 0


def test_create_makes_an_empty_file_a_ledger(tmp_path: Path) -> None:
    """``create=True`` (what ``chatledger init`` does) turns an empty file into a ledger."""
    path = tmp_path / "empty.db"
    path.touch()
    with open_store(f"sqlite:///{path}", create=True) as store:
        assert store.event_count() == 0
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        assert store.sessions() == []


def test_a_new_path_is_created_by_the_first_append_only(tmp_path: Path) -> None:
    """Opening a new path writes nothing; reads see an empty ledger; the first append creates it."""
    path = tmp_path / "new.db"
    store = open_store(f"sqlite:///{path}")
    assert store.read("s") == [] and store.sessions() == [] and store.last_position() == 0
    assert store.load_history("s") == (0, [])
    assert store.rebuild() == 0
    with pytest.raises(NotFoundError):
        store.erase("s")
    assert os.listdir(tmp_path) == []
    store.append("s", HI)
    assert path.exists()
    assert [r.version for r in store.read("s")] == [1]
    store.close()
    with open_store(f"sqlite:///{path}", readonly=True) as again:
        assert again.version("s") == 1


def test_a_store_sees_a_ledger_another_process_created_after_it_opened(tmp_path: Path) -> None:
    """A store opened on a missing path reads the ledger once someone else has created it."""
    path = tmp_path / "later.db"
    waiting = open_store(f"sqlite:///{path}")
    assert waiting.version("s0") == 0
    ledger(path, sessions=1)
    assert waiting.version("s0") == 1
    waiting.append("s0", HI)
    assert waiting.version("s0") == 2
    waiting.close()


def test_readonly_open_of_a_missing_file_is_not_found(tmp_path: Path) -> None:
    """``readonly=True`` on a path with no file raises NotFoundError and creates nothing."""
    with pytest.raises(NotFoundError, match="no chatledger database"):
        open_store(f"sqlite:///{tmp_path / 'nope.db'}", readonly=True)
    assert os.listdir(tmp_path) == []


def test_readonly_reads_leave_the_ledger_byte_identical(tmp_path: Path) -> None:
    """Every read of a read-only store leaves the database file's bytes as they were."""
    path = ledger(tmp_path / "log.db")
    before = digest(path)
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        assert len(store.sessions()) == 2
        assert store.verify().ok
        assert len(store.read_all()) == 2
        assert store.load_history("s0")[0] == 1
        assert store.stats()["events"] == 2
    assert digest(path) == before


def test_readonly_store_refuses_writes_and_writes_nothing(tmp_path: Path) -> None:
    """append, erase and rebuild on a read-only store raise StoreError; the file is unchanged."""
    path = ledger(tmp_path / "log.db")
    before = digest(path)
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        for write in (lambda: store.append("s0", HI), lambda: store.erase("s0"),
                      store.rebuild):
            with pytest.raises(StoreError, match="read-only"):
                write()
        assert store.version("s0") == 1
    assert digest(path) == before


def test_reads_do_not_wait_for_a_writer_holding_the_write_lock(tmp_path: Path) -> None:
    """With another connection holding the write lock, a read-only open, sessions and verify
    return at once (they used to wait up to the 30 s busy timeout)."""
    path = ledger(tmp_path / "log.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        with open_store(f"sqlite:///{path}", readonly=True) as store:
            assert len(store.sessions()) == 2
            assert store.verify().ok
        with open_store(f"sqlite:///{path}") as writer:  # a writable open reads too
            assert writer.version("s1") == 1
        assert time.perf_counter() - started < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's private tmp tree, so another user can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="chatledger-ro-"))
    folder.chmod(0o755)
    yield folder
    folder.chmod(0o755)
    for child in folder.iterdir():
        child.chmod(0o644)
    shutil.rmtree(folder)


def _has_nobody() -> bool:
    import pwd

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return False
    return True


AS_NOBODY = pytest.mark.skipif(os.geteuid() != 0 or not _has_nobody(),
                               reason="needs root and a user 'nobody' to read as another user")


def read_as_nobody(url: str) -> tuple[int, bool, int] | str:
    """Open ``url`` read-only in a forked child running as user nobody; return (sessions,
    verify ok, events) or the error text."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, read, report through the pipe, exit
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                with open_store(url, readonly=True) as store:
                    answer = repr((len(store.sessions()), store.verify().ok,
                                   store.event_count()))
            except Exception as e:
                answer = repr(f"{type(e).__name__}: {e}")
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    import ast

    result: tuple[int, bool, int] | str = ast.literal_eval(text)
    return result


@AS_NOBODY
def test_an_unprivileged_user_verifies_a_read_only_copy(shared_dir: Path, tmp_path: Path) -> None:
    """User nobody opens a root-owned 0444 copy in a 0555 folder read-only: sessions, verify
    and counts work, and the copy stays byte-identical."""
    copy = shared_dir / "audit.db"
    shutil.copy(ledger(tmp_path / "log.db"), copy)
    copy.chmod(0o444)
    shared_dir.chmod(0o555)
    before = digest(copy)
    assert read_as_nobody(f"sqlite:///{copy}") == (2, True, 2)
    assert digest(copy) == before
    assert os.listdir(shared_dir) == ["audit.db"]


def test_a_read_only_copy_in_a_read_only_folder_is_readable(shared_dir: Path,
                                                           tmp_path: Path) -> None:
    """A copy whose file and folder cannot be written opens (immutable) for reads, even when
    opened for writing, and a write names the read-only medium."""
    copy = shared_dir / "audit.db"
    shutil.copy(ledger(tmp_path / "log.db"), copy)
    copy.chmod(0o444)
    shared_dir.chmod(0o555)
    if os.access(copy, os.W_OK):
        pytest.skip("this user can write whatever the mode bits say (root): the mode cannot "
                    "make the copy read-only; the nobody test covers it")
    before = digest(copy)
    with open_store(f"sqlite:///{copy}") as store:
        assert store.verify().ok and len(store.sessions()) == 2
        with pytest.raises(StoreError, match="read-only"):
            store.append("s0", HI)
    assert digest(copy) == before


@pytest.mark.postgres
def test_postgres_readonly_open_of_a_missing_schema_says_so_and_creates_nothing(
        tmp_path: Path) -> None:
    """A read-only open of a schema that does not exist (a ?schema= typo) is a NotFoundError
    naming it (as a missing SQLite file is), and creates nothing."""
    import psycopg

    name = postgres_test_schema(tmp_path)
    url = postgres_schema_url(name)
    with pytest.raises(NotFoundError, match=f"schema '{name}'.*does not exist; nothing was "
                                            "created"):
        open_store(url, readonly=True)
    with psycopg.connect(postgres_url()) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (name,)).fetchone() is None


@pytest.mark.postgres
def test_postgres_readonly_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    """A read-only PostgreSQL store reads an existing ledger and refuses every write."""
    url = postgres_schema_url(postgres_test_schema(tmp_path))
    with open_store(url) as writer:
        writer.append("s", HI)
    with open_store(url, readonly=True) as store:
        assert [r.version for r in store.read("s")] == [1]
        assert store.verify().ok and len(store.sessions()) == 1
        with pytest.raises(StoreError, match="read-only"):
            store.append("s", HI)
        with pytest.raises(StoreError, match="read-only"):
            store.erase("s")
    with open_store(url, readonly=True) as store:
        assert store.version("s") == 1


@AS_NOBODY
def test_a_read_only_copy_with_pending_log_commits_is_refused_not_misread(
        shared_dir: Path, tmp_path: Path) -> None:
    """A read-only copy whose -wal still holds commits is refused with a StoreError naming the
    log, rather than read (immutable) without those commits."""
    path = tmp_path / "log.db"
    store = open_store(f"sqlite:///{path}")
    store.append("s0", HI)
    keeper = sqlite3.connect(path)  # a second connection keeps the WAL from being removed
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("SELECT 1 FROM events").fetchall()
    store.append("s1", HI)
    shutil.copy(path, shared_dir / "audit.db")
    shutil.copy(f"{path}-wal", shared_dir / "audit.db-wal")
    for copy in shared_dir.iterdir():
        copy.chmod(0o444)
    shared_dir.chmod(0o555)
    answer = read_as_nobody(f"sqlite:///{shared_dir / 'audit.db'}")
    keeper.close()
    store.close()
    assert isinstance(answer, str) and answer.startswith("StoreError") and "write-ahead log" \
        in answer, answer


def test_an_older_schema_is_upgraded_only_by_a_writable_open(tmp_path: Path) -> None:
    """A ledger at an older schema version: a read-only open refuses it untouched; opening it
    for writing upgrades it, keeping its events."""
    path = ledger(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE chatledger_meta SET value = '0' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="open it for writing once"):
        open_store(f"sqlite:///{path}", readonly=True)
    assert digest(path) == before
    with open_store(f"sqlite:///{path}") as store:
        assert store.version("s0") == 1
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        assert store.verify().ok


def test_a_read_only_store_never_serves_a_history_behind_the_log(tmp_path: Path) -> None:
    """When the projections lag the log (after a projections=False load), a read-only store's
    history read raises StoreError saying so, instead of returning stale messages."""
    path = ledger(tmp_path / "log.db", sessions=1)
    with open_store(f"sqlite:///{path}", projections=False) as bulk:
        bulk.append("s0", HI)
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        assert store.version("s0") == 2
        with pytest.raises(StoreError, match="behind the log"):
            store.load_history("s0")
    with open_store(f"sqlite:///{path}") as writer:  # a writable open catches up
        assert writer.load_history("s0")[0] == 2
