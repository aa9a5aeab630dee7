"""The saver's access to the log: one stream per thread and namespace, read through indexes.

``ThreadLedger`` holds a bounded index per stream (see ``_index``), catches it up from the log
before every use, appends at the version it read (retrying a lost race), refuses writes to a
deleted thread, and verifies a stream before anything read from it is deserialised.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig

from chatledger.eventstore import (
    ConcurrencyError,
    Event,
    EventStore,
    InvalidKeyError,
    SessionKey,
)
from chatledger.runtime.langgraph._errors import CheckpointIntegrityError, ThreadDeletedError
from chatledger.runtime.langgraph._index import ThreadIndex

__all__ = ["Build", "ThreadLedger", "configurable", "stream_key"]

_RETRIES = 5  # a race lost to another process re-reads the stream and tries again
_PAGE = 500

Build = Callable[[ThreadIndex], "tuple[list[Event], Callable[[ThreadIndex], None]] | None"]
"""Given the caught-up index, the events to append and what to do to the index afterwards
(None: nothing to append)."""


def stream_key(thread_id: Any, checkpoint_ns: str = "") -> SessionKey:
    """The stream of one thread and namespace: ``thread_id``, plus ``checkpoint_ns`` if any.

    Raises:
        InvalidKeyError: No thread id, or a part that is not a valid key part.
    """
    if thread_id is None or thread_id == "":
        raise InvalidKeyError("thread_id: a LangGraph checkpoint needs a thread_id in "
                              "config['configurable']")
    return _stream_key(str(thread_id), str(checkpoint_ns or ""))


@functools.lru_cache(maxsize=4096)
def _stream_key(thread_id: str, checkpoint_ns: str) -> SessionKey:
    # every put, put_writes and read of a turn names the same thread: check its key once
    # (a SessionKey is immutable, so the cached one can be shared)
    if checkpoint_ns:
        return SessionKey(thread_id=thread_id, checkpoint_ns=checkpoint_ns)
    return SessionKey(thread_id=thread_id)


def configurable(config: RunnableConfig | None) -> dict[str, Any]:
    """The ``configurable`` part of a LangGraph config (empty if there is none)."""
    return dict((config or {}).get("configurable") or {})


class ThreadLedger:
    """Streams of LangGraph threads in one store, with a read index per stream."""

    def __init__(self, store: EventStore, *, max_threads: int) -> None:
        self.store = store
        self._max_threads = max_threads
        self._indexes: OrderedDict[str, ThreadIndex] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, key: SessionKey) -> ThreadIndex:
        """The stream's index as last read (least recently used ones are dropped)."""
        sid = key.stream_id
        with self._lock:
            index = self._indexes.get(sid)
            if index is None:
                index = self._indexes[sid] = ThreadIndex()
            self._indexes.move_to_end(sid)
            while len(self._indexes) > self._max_threads:
                self._indexes.popitem(last=False)
        return index

    def forget(self, key: SessionKey) -> None:
        """Drop a stream's index; the next use reads the stream afresh."""
        with self._lock:
            self._indexes.pop(key.stream_id, None)

    def caught_up(self, key: SessionKey) -> ThreadIndex:
        """The stream's index after folding everything appended since it was last read."""
        index = self.index(key)
        with index.lock:
            index.fold(self.store.read(key, after_version=index.version))
        return index

    def verified(self, key: SessionKey, index: ThreadIndex, version: int) -> None:
        """Check the stream's chain before a payload at ``version`` is deserialised.

        Payloads this process appended are trusted (it holds the very bytes); anything read
        from the database is checked once, by ``verify`` over the stream.

        Raises:
            CheckpointIntegrityError: A stored row of the stream was altered.
        """
        if version <= index.verified_through:
            return
        report = self.store.verify(key)
        if not report.ok:
            problems = "; ".join(f"version {p.version}: {p.detail}" for p in report.problems[:5])
            raise CheckpointIntegrityError(
                f"stream {key.stream_id!r} failed verification, so its checkpoints are not "
                f"deserialised: {problems}")
        index.verified_through = index.version

    def append_built(self, key: SessionKey, build: Build, meta: dict[str, Any]) -> int:
        """Append what ``build`` returns at the version it saw; returns the stream's version.

        Raises:
            ThreadDeletedError: The thread was deleted; nothing was written.
            ConcurrencyError: Other writers won the race every time; nothing was written.
        """
        index = self.index(key)
        with index.lock:
            for attempt in range(_RETRIES):
                if attempt or not index.version:
                    # the first try trusts the index: if another writer moved the stream on,
                    # expected_version fails the append, and the retry reads what it missed
                    index.fold(self.store.read(key, after_version=index.version))
                if index.deleted:
                    raise ThreadDeletedError(f"thread {key.parts.get('thread_id')!r} was "
                                             "deleted; nothing was written")
                before = index.version
                try:
                    built = build(index)
                    if built is None:
                        return before
                    events, done = built
                    result = self.store.append(key, events, expected_version=before, meta=meta)
                except ConcurrencyError:
                    if attempt == _RETRIES - 1:
                        raise
                    continue
                trusted = index.verified_through == before
                for i, event in enumerate(events):
                    index.apply(before + 1 + i, event)
                if trusted:  # this process wrote every byte after the verified prefix
                    index.verified_through = result.version
                done(index)
                return result.version
        raise AssertionError("unreachable")

    def check_root_alive(self, thread_id: Any) -> None:
        """Refuse a write to a namespace of a deleted thread.

        Raises:
            ThreadDeletedError: The thread was deleted.
        """
        if self.caught_up(stream_key(thread_id)).deleted:
            raise ThreadDeletedError(f"thread {thread_id!r} was deleted; nothing was written")

    def check_root_alive_after(self, thread_id: Any, key: SessionKey) -> None:
        """After a namespace write: if a delete raced it, erase the write rather than let it
        resurrect the thread.

        Raises:
            ThreadDeletedError: The thread was deleted; the write was erased.
        """
        if self.caught_up(stream_key(thread_id)).deleted:
            self.erase_stream(key)
            raise ThreadDeletedError(f"thread {thread_id!r} was deleted; the write was erased")

    def erase_stream(self, key: SessionKey) -> None:
        """Erase every payload of a stream (digests stay, so ``verify`` passes)."""
        if self.store.version(key) > 0:
            self.store.erase(key, reason="langgraph: delete_thread")
        self.forget(key)

    def streams(self, config: RunnableConfig | None) -> list[SessionKey]:
        """The streams a config names: one namespace, every namespace of a thread, or (no
        config) every thread's, from the session catalog."""
        conf = configurable(config)
        thread_id = conf.get("thread_id")
        if thread_id is not None and "checkpoint_ns" in conf:
            return [stream_key(thread_id, conf.get("checkpoint_ns") or "")]
        keys: list[SessionKey] = []
        after = None
        while True:
            if thread_id is not None:
                page = self.store.sessions(limit=_PAGE, after=after, thread_id=str(thread_id))
            else:
                page = self.store.sessions(limit=_PAGE, after=after)
            keys += [s.key for s in page if "thread_id" in s.key.parts]
            if len(page) < _PAGE:
                return keys
            after = page[-1].cursor
