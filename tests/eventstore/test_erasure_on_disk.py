"""Erasure on SQLite: the erased text is gone from the bytes on disk, not only from reads."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from chatledger.eventstore import AIMessage, HumanMessage, MessageAppended, SessionKey, open_store

KEY = SessionKey(user_id="123", conversation_id="1")
SECRET = "card-number-4111111111111111"


def files_holding(directory: Path, needle: str) -> list[str]:
    """Names of the files in ``directory`` whose bytes contain ``needle``."""
    return sorted(p.name for p in directory.iterdir() if needle.encode() in p.read_bytes())


def fill(url: str) -> None:
    """Write a session with the secret in several messages, plus another session."""
    with open_store(url) as store:
        store.append(KEY, [MessageAppended(message=HumanMessage(f"my card is {SECRET}")),
                           MessageAppended(message=AIMessage(f"noted {SECRET} " + "x" * 5000))])
        store.append("other", [MessageAppended(message=HumanMessage("keep me"))])


def test_erased_text_is_gone_from_the_file_after_close(tmp_path: Path) -> None:
    """After erase() and close, no file of the database holds the erased text."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    fill(url)
    assert files_holding(tmp_path, SECRET) == ["log.db"]
    with open_store(url) as store:
        store.erase(KEY)
        assert store.verify().ok
    assert files_holding(tmp_path, SECRET) == []
    assert files_holding(tmp_path, "keep me") == ["log.db"]


def test_erased_text_is_gone_from_disk_while_the_store_is_open(tmp_path: Path) -> None:
    """Right after erase() returns, neither the database nor its WAL holds the erased text."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_store(url) as store:
        store.append(KEY, [MessageAppended(message=HumanMessage(f"my card is {SECRET}"))])
        store.erase(KEY)
        assert files_holding(tmp_path, SECRET) == []


def test_a_reader_does_not_stall_erase_and_purge_finishes_later(tmp_path: Path) -> None:
    """With another connection in a read transaction, erase() returns at once with
    purged=False (not after the busy timeout); once the reader is done, purge() removes the
    text from the file, its free pages and the WAL."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    fill(url)
    reader = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()
    with open_store(url) as store:
        started = time.perf_counter()
        receipt = store.erase(KEY)
        assert time.perf_counter() - started < 5
        assert receipt.purged is False
        assert store.purge() is False
        reader.execute("COMMIT")
        reader.close()
        assert store.purge() is True
        assert files_holding(tmp_path, SECRET) == []
        assert store.verify().ok
    assert files_holding(tmp_path, "keep me") == ["log.db"]


def test_erase_purges_free_pages_and_the_wal_at_once(tmp_path: Path) -> None:
    """A purged erasure leaves the text nowhere: not in a live row, a free page or the WAL."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_store(url) as store:
        store.append(KEY, [MessageAppended(message=HumanMessage(f"{SECRET} " + "y" * 20_000))])
        store.append("other", [MessageAppended(message=HumanMessage("keep me"))])
        receipt = store.erase(KEY)
        assert receipt.purged is True
        free = store.db.execute("PRAGMA freelist_count").fetchone()[0]
        assert free > 0  # the overflow pages were freed, and zeroed: the grep below holds
        assert files_holding(tmp_path, SECRET) == []
