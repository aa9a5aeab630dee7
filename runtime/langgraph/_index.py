"""What the checkpoint events of one stream say, folded in memory: the saver's read index.

The log is the only truth. An index is a fold of one stream's records up to ``version`` and is
brought up to date by reading only the records after it (one indexed range read), so a thread
that is read again costs a short read, not a scan. Nothing here does I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from chatledger.eventstore import (
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    MessageRedacted,
    ModelCalled,
    PayloadErased,
    Record,
    RunRecorded,
    SessionTagged,
    ThreadDeleted,
)

__all__ = ["SavedCheckpoint", "StoredWrite", "ThreadIndex"]


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint event and the stream version it is stored at."""

    version: int
    event: CheckpointSaved


@dataclass(frozen=True)
class StoredWrite:
    """One pending write: its task, index, channel and serde-encoded value."""

    version: int
    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    data: bytes


@dataclass
class ThreadIndex:
    """The fold of one stream's checkpoint events.

    ``history_version`` is the version of the last event that changed the stream's history;
    ``messages`` caches the current history as LangChain messages, valid while
    ``messages_version == version`` (set by the saver after its own appends and loads).
    ``verified_through`` is the highest version whose payloads were checked against the chain
    (or were written by this process, which holds their bytes).
    """

    version: int = 0
    deleted: bool = False
    checkpoints: dict[str, SavedCheckpoint] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    writes: dict[str, dict[tuple[str, int], StoredWrite]] = field(default_factory=dict)
    history_version: int = 0
    messages: list[Any] | None = None
    messages_version: int = -1
    verified_through: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def apply(self, version: int, event: Any) -> None:
        """Fold one event stored at ``version``."""
        cached = self.messages_version == self.version
        self.version = version
        self._apply(version, event)
        if cached and self.history_version != version:
            self.messages_version = version  # the history did not move: the cache holds

    def _apply(self, version: int, event: Any) -> None:
        match event:
            case CheckpointSaved(checkpoint_id=cid, messages=messages):
                self.checkpoints.pop(cid, None)  # a re-put moves it to its new version
                self.checkpoints[cid] = SavedCheckpoint(version, event)
                self.hidden.discard(cid)
                # its writes stay, whichever came first: LangGraph stores a task's writes
                # while the put of their checkpoint may still be under way, and a re-put of
                # the same id keeps them (as SqliteSaver's and PostgresSaver's upserts do)
                if messages:
                    self.history_version = version
            case CheckpointWritesSaved(checkpoint_id=cid, task_id=task_id, task_path=path):
                table = self.writes.setdefault(cid, {})
                for idx, channel, type_, data in event.writes:
                    table[(task_id, idx)] = StoredWrite(version, task_id, path, idx, channel,
                                                             type_, data)
            case CheckpointsDeleted(checkpoint_ids=ids):
                for cid in ids:
                    self.hidden.add(cid)
                    self.writes.pop(cid, None)
            case ThreadDeleted():
                self.deleted = True
                self.checkpoints.clear()
                self.writes.clear()
                self.history_version = version
            case MessageRedacted(version=erased):
                # an erased checkpoint or write can no longer be restored: drop it from view
                self.history_version = version
                for cid in [c for c, s in self.checkpoints.items() if s.version == erased]:
                    del self.checkpoints[cid]
                for table in self.writes.values():
                    for wkey in [k for k, w in table.items() if w.version == erased]:
                        del table[wkey]
            case PayloadErased() | RunRecorded() | SessionTagged() | ModelCalled():
                pass
            case _:
                # anything else (appends, clears, redactions, forks) changes the history
                self.history_version = version

    def fold(self, records: list[Record]) -> None:
        """Fold records read after ``version``, in order."""
        for record in records:
            self.apply(record.version, record.event)

    def visible(self) -> list[SavedCheckpoint]:
        """The checkpoints the graph can see, newest checkpoint id first."""
        if self.deleted:
            return []
        kept = [c for cid, c in self.checkpoints.items() if cid not in self.hidden]
        return sorted(kept, key=lambda c: c.event.checkpoint_id, reverse=True)

    def get(self, checkpoint_id: str | None) -> SavedCheckpoint | None:
        """A visible checkpoint by id, or the newest one when ``checkpoint_id`` is None."""
        if self.deleted:
            return None
        if checkpoint_id is None:  # the newest: one pass, no sort of the whole thread
            return max((c for cid, c in self.checkpoints.items() if cid not in self.hidden),
                       key=lambda c: c.event.checkpoint_id, default=None)
        found = self.checkpoints.get(checkpoint_id)
        return None if found is None or checkpoint_id in self.hidden else found

    def pending_writes(self, checkpoint_id: str) -> list[StoredWrite]:
        """The writes against a checkpoint, in the order live execution applies them."""
        table = self.writes.get(checkpoint_id, {})
        return sorted(table.values(), key=lambda w: (w.task_path, w.task_id, w.idx))
