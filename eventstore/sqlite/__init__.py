"""The SQLite backend, the embedded default: one file (or memory), WAL, STRICT tables.

Its SQL lives in ``_sql``; the shared definitions of the append, the projection and verify in
``chatledger.eventstore._append``, ``_projection`` and ``_verify``.
"""

from __future__ import annotations

from chatledger.eventstore.sqlite._opening import sqlite_path
from chatledger.eventstore.sqlite._store import SQLiteStore

__all__ = ["SQLiteStore", "sqlite_path"]
