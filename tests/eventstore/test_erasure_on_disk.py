"""Erasure on SQLite: the erased text is gone from the bytes on disk, not only from reads."""

from __future__ import annotations

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
