"""Decoded current histories, kept per store between turns, so a turn reads only what is new.

Decoding a session's whole history is the part of a turn that grows with the conversation.
The cache keeps each recently used session's current messages with the stream version they
reflect; a load then reads only the events after that version (one indexed range read of the
log, the same work at history 10 and at 10,000) and folds them in memory with the projection's
own step (``projection_step``). The log is the authority, so every load still reads it:

- Events are append-only; the only change to a stored event is an erasure, which appends a
  ``MessageRedacted`` in the same transaction. A cached prefix therefore stays exact until an
  event after it says otherwise, and any process's append, clear, erasure or fork is seen by
  the next load in every other process and app server.
- A clear empties the history in the fold; a redaction (an erasure) drops the entry and loads
  the session in full from the projection, which has already removed the erased rows.
- A fork writes a new stream that begins with ``SessionForked``; it is folded like any event.

The messages a cached load returns are shared with later loads of the session in this
process: the list is the caller's own, the message objects are not. Treat them as read-only,
as every message passed to a prompt is (copy one before changing it).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence

from chatledger.eventstore import EventStore, KeyLike, Message, Record, SessionKey, StoreError
from chatledger.eventstore._projection import projection_step

__all__ = ["HistoryCache", "history_cache"]

MAX_MESSAGES = 200_000
"""Messages kept per store; the least recently used sessions go first beyond it."""


class _Entry:
    __slots__ = ("messages", "version")

    def __init__(self, version: int, messages: list[Message]) -> None:
        self.version = version
        self.messages = messages


def _fold(entry: _Entry, records: Sequence[Record]) -> _Entry | None:
    """The entry after ``records`` (the stream's events after ``entry.version``, in order),
    or None when one of them rewrites an earlier message (a redaction: reload in full)."""
    if not records:
        return entry
    messages = entry.messages
    fresh = False
    for record in records:
        step = projection_step(record.event)
        if step.redacts is not None:
            return None
        if step.clears:
            messages, fresh = [], True
        if step.messages:
            if not fresh:  # never extend a list a caller or another entry may hold
                messages, fresh = list(messages), True
            messages.extend(m for m in step.messages if isinstance(m, Message))
    return _Entry(records[-1].version, messages)


class HistoryCache:
    """The current histories of one store's recently used sessions, checked against the log
    on every load. Thread-safe; one per store per process (``history_cache``).

    Args:
        store: The store whose sessions it holds.
        max_messages: How many messages it keeps in all; least recently used sessions go first.
    """

    def __init__(self, store: EventStore, *, max_messages: int = MAX_MESSAGES) -> None:
        self._store = weakref.ref(store)
        self._max = max_messages
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, key: KeyLike) -> tuple[int, list[Message]]:
        """The current history of a session and its version, reading only events after the
        cached version.

        Raises:
            StoreError: The database failed, or the store is gone.
        """
        store = self._live_store()
        key = SessionKey.coerce(key)
        entry = self._get(key.stream_id)
        if entry is not None:
            entry = _fold(entry, store.read(key, after_version=entry.version))
        if entry is None:
            entry = _Entry(*store.load_history(key))
        return self._put(key.stream_id, entry)

    async def aload(self, key: KeyLike) -> tuple[int, list[Message]]:
        """``load`` without blocking the event loop."""
        store = self._live_store()
        key = SessionKey.coerce(key)
        entry = self._get(key.stream_id)
        if entry is not None:
            entry = _fold(entry, await store.aread(key, after_version=entry.version))
        if entry is None:
            entry = _Entry(*await store.aload_history(key))
        return self._put(key.stream_id, entry)

    def _live_store(self) -> EventStore:
        store = self._store()
        if store is None:  # only a cache made directly, not through history_cache(store)
            raise StoreError("this history cache's store is gone")
        return store

    def _get(self, stream_id: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is not None:
                self._entries.move_to_end(stream_id)
            return entry

    def _put(self, stream_id: str, entry: _Entry) -> tuple[int, list[Message]]:
        with self._lock:
            old = self._entries.get(stream_id)
            # Two loads of one session may race; the newer version wins, whatever finishes last.
            if old is None or old.version <= entry.version:
                if old is not None:
                    self._size -= len(old.messages)
                self._entries[stream_id] = entry
                self._entries.move_to_end(stream_id)
                self._size += len(entry.messages)
                while self._size > self._max and len(self._entries) > 1:
                    _, dropped = self._entries.popitem(last=False)
                    self._size -= len(dropped.messages)
        return entry.version, list(entry.messages)


_caches: weakref.WeakKeyDictionary[EventStore, HistoryCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def history_cache(store: EventStore) -> HistoryCache:
    """The one ``HistoryCache`` of ``store`` in this process (made on first use, dropped with
    the store)."""
    cache = _caches.get(store)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(store)
            if cache is None:
                cache = HistoryCache(store)
                _caches[store] = cache
    return cache
