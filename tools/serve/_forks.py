"""The fork tree of a session: its ancestors through ``SessionForked.parent``, its descendants.

A fork names its parent in its first event, so going up is one read per level. Going down
needs every session's first event: the index reads each session once (a stream's first event
never changes). After the first full pass over the catalog, each look reads only the sessions
active since the last one (the catalog is ordered by last activity), less a margin for
appends that committed after their timestamp was taken. It does not key its cache on
``last_position()``: on PostgreSQL that stands still while any transaction on the server runs.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from chatledger.eventstore import (
    InvalidKeyError,
    Record,
    SessionForked,
    SessionInfo,
    SessionKey,
    StoreError,
)

__all__ = ["ForkIndex", "ForkNode", "ForkReader"]

# Forks of forks deeper than this are cut off (a cycle cannot happen, but a page must end).
MAX_DEPTH = 32
_CATALOG_PAGE = 1000
_RECENT_PAGE = 50
# An append's recorded_at is taken before it commits: a session can show up in the catalog
# with a last activity a little older than a look that ran while the append was in flight.
_MARGIN = timedelta(minutes=5)


class ForkReader(Protocol):
    """The store methods the fork index reads through."""

    def read(self, key: SessionKey, *, until_version: int | None = None) -> list[Record]: ...

    def sessions(self, *, limit: int = 100, after: str | None = None,
                 **key_filter: str) -> list[SessionInfo]: ...


class ForkNode(msgspec.Struct, frozen=True):
    """One session in a fork tree; ``at`` is the parent version it was forked at."""

    key: SessionKey
    at: int
    children: list[ForkNode]


def parent_of(store: ForkReader, key: SessionKey) -> tuple[SessionKey, int] | None:
    """The session ``key`` was forked from and at which version, or None if it is no fork.

    A first event that does not decode (a type a newer release wrote, or a damaged row) is no
    fork this page can follow: the session is left out of the tree, and its own pages say
    what the event is.
    """
    try:
        first = store.read(key, until_version=1)
    except StoreError:
        return None
    if not first or not isinstance(first[0].event, SessionForked):
        return None
    event = first[0].event
    try:
        return SessionKey(**event.parent), event.parent_version
    except InvalidKeyError:
        return None


class ForkIndex:
    """Parent links of every session, read lazily and kept while the log does not change.

    Args:
        store: The store to read (only ``read`` and ``sessions``).
    """

    def __init__(self, store: ForkReader) -> None:
        self._store = store
        self._parents: dict[SessionKey, tuple[SessionKey, int] | None] = {}
        self._children: dict[SessionKey, list[tuple[SessionKey, int]]] = {}
        self._seen_active: datetime | None = None
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        since = None if self._seen_active is None else self._seen_active - _MARGIN
        newest = self._seen_active
        # After the first pass, a look usually finds a handful of recent sessions: small pages.
        limit = _CATALOG_PAGE if since is None else _RECENT_PAGE
        after = None
        while True:
            page = self._store.sessions(limit=limit, after=after)
            for info in page:
                if newest is None or info.last_active > newest:
                    newest = info.last_active
                if info.key not in self._parents:
                    link = parent_of(self._store, info.key)
                    self._parents[info.key] = link
                    if link is not None:
                        self._children.setdefault(link[0], []).append((info.key, link[1]))
            if len(page) < limit or (since is not None and page[-1].last_active < since):
                break
            after = page[-1].cursor
        self._seen_active = newest

    def tree(self, key: SessionKey) -> ForkNode | None:
        """The whole fork tree ``key`` belongs to, from its root; None if it has no forks."""
        with self._lock:
            self._refresh()
            root, depth = key, 0
            while depth < MAX_DEPTH:
                link = self._parents.get(root)
                if link is None:
                    link = parent_of(self._store, root) if root not in self._parents else None
                if link is None:
                    break
                root, depth = link[0], depth + 1
            if root == key and not self._children.get(key):
                return None
            return self._node(root, 0, 0)

    def _node(self, key: SessionKey, at: int, depth: int) -> ForkNode:
        children = [] if depth >= MAX_DEPTH else [
            self._node(child, child_at, depth + 1)
            for child, child_at in sorted(self._children.get(key, []),
                                          key=lambda c: (c[1], c[0].stream_id))
        ]
        return ForkNode(key=key, at=at, children=children)
