"""Every SQL statement of the SQLite backend, as named statements with bound parameters."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

SCHEMA_VERSION = 3  # 2: per-event salts; 3: positions from the log, no 'log' row

CAUGHT_UP = -1
"""The history checkpoint's value while every event of the log is applied (see SCHEMA)."""

PRAGMAS = """
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = OFF;
PRAGMA temp_store = MEMORY;
"""

# Only a lawful erasure may change an event row: it nulls the payload and its salt.
_NO_UPDATE = """
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
WHEN NEW.data IS NOT NULL OR NEW.salt IS NOT NULL
  OR NEW.stream_id IS NOT OLD.stream_id OR NEW.version IS NOT OLD.version
  OR NEW.position IS NOT OLD.position OR NEW.event_id IS NOT OLD.event_id
  OR NEW.type IS NOT OLD.type OR NEW.recorded_at IS NOT OLD.recorded_at
  OR NEW.meta IS NOT OLD.meta OR NEW.payload_digest IS NOT OLD.payload_digest
  OR NEW.digest IS NOT OLD.digest OR NEW.chain IS NOT OLD.chain
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""

# STRICT tables, created explicitly. ``events`` is keyed by ``position``, the global order, so
# an append lands at the right edge of the table (no page splits in the middle, fewer dirty
# pages per commit); one stream is a contiguous range of the unique (stream_id, version) index.
# An append takes its positions after max(position), the right edge of that b-tree, which it
# reads anyway: no counter row to update, one dirty page less per commit. A position is never
# handed out twice, since rows can never leave the log (the triggers below refuse DELETE and
# any change of position), so max(position) never goes down; an append that rolled back
# leaves no row, but nobody ever saw its positions. (Schemas 1 and 2 kept a counter row, 'log'.)
# The history projection below is clustered by stream, so loading a session reads a
# contiguous range of pages. Its checkpoint, the 'history' row, holds CAUGHT_UP (-1) while
# every event is applied, which every projecting append keeps true without writing it; only
# an append by a projections=False store sets it, to the last position applied before it.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS chatledger_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL
) STRICT;
DELETE FROM checkpoints WHERE name = 'log';

CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY NOT NULL CHECK (position >= 1),
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    data TEXT,
    meta TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    digest TEXT NOT NULL,
    chain TEXT NOT NULL,
    salt TEXT
) STRICT;
-- A new log is caught up (-1); a missing row in a log with events is not re-created as
-- caught up, since that would hide it from verify: 0 says nothing is applied.
INSERT OR IGNORE INTO checkpoints (name, position)
VALUES ('history', CASE WHEN EXISTS (SELECT 1 FROM events) THEN 0 ELSE -1 END);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (stream_id, version);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);

-- The log is append-only: only a lawful erasure may null a payload (and its salt), nothing
-- else changes.
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
{_NO_UPDATE}

-- One row per stream: the log's head (version, chain) plus the catalog projection's columns.
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    chain TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    cleared_version INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]'
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS stream_keys (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    PRIMARY KEY (name, value, stream_id)
) STRICT, WITHOUT ROWID;

-- The history projection: every message, by the version of the event that brought it in.
-- Clears are rows of ``clears``; the current history is the rows after the last clear.
CREATE TABLE IF NOT EXISTS history (
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (stream_id, version, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS clears (
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) STRICT, WITHOUT ROWID;
"""

# Version 2: a per-event salt, stored with the payload and erased with it. Events of version 1
# keep a NULL salt and their unsalted payload digests, which still verify.
MIGRATE_TO_2 = f"""
ALTER TABLE events ADD COLUMN salt TEXT;
DROP TRIGGER IF EXISTS events_no_update;
{_NO_UPDATE}
"""

TABLES = ("chatledger_meta", "checkpoints", "events", "streams", "stream_keys", "history",
          "clears")

GET_META = "SELECT value FROM chatledger_meta WHERE name = ?"
SET_META = "INSERT OR REPLACE INTO chatledger_meta (name, value) VALUES (?, ?)"

BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# One round trip for everything an append needs to know before it writes.
APPEND_STATE = """
SELECT (SELECT coalesce(max(position), 0) FROM events),
       (SELECT position FROM checkpoints WHERE name = 'history'),
       s.version, s.chain, s.updated_at, s.message_count
FROM (SELECT 1) LEFT JOIN streams AS s ON s.stream_id = ?
"""

FIND_EVENT_IDS = """
SELECT event_id, stream_id, version, position, payload_digest, salt FROM events
WHERE event_id IN (SELECT value FROM json_each(?))
"""

INSERT_EVENT = """
INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data, meta,
                    payload_digest, digest, chain, salt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_STREAM = """
INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at, message_count)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
# The head and the catalog's message count change in one statement: one page, one write.
UPDATE_STREAM_HEAD = """
UPDATE streams SET version = ?, chain = ?, updated_at = ?, message_count = message_count + ?
WHERE stream_id = ?
"""
INSERT_KEY_PART = "INSERT INTO stream_keys (name, value, stream_id) VALUES (?, ?, ?)"
SET_CHECKPOINT = "UPDATE checkpoints SET position = ? WHERE name = ?"
GET_CHECKPOINT = "SELECT position FROM checkpoints WHERE name = ?"
LAST_POSITION = "SELECT coalesce(max(position), 0) FROM events"
BOTH_POSITIONS = """
SELECT (SELECT coalesce(max(position), 0) FROM events),
       (SELECT position FROM checkpoints WHERE name = 'history')
"""
CATCH_UP_PAGE = """
SELECT stream_id, version, position, type, data FROM events
WHERE position > ? ORDER BY position LIMIT ?
"""

# History projection.
INSERT_HISTORY = "INSERT INTO history (stream_id, version, idx, message) VALUES (?, ?, ?, ?)"
INSERT_CLEAR = "INSERT INTO clears (stream_id, version) VALUES (?, ?)"
DELETE_HISTORY_VERSION = "DELETE FROM history WHERE stream_id = ? AND version = ?"
ADD_MESSAGE_COUNT = "UPDATE streams SET message_count = message_count + ? WHERE stream_id = ?"
GET_TAGS = "SELECT tags FROM streams WHERE stream_id = ?"
SET_TAGS = "UPDATE streams SET tags = ? WHERE stream_id = ?"
CLEAR_CATALOG = "UPDATE streams SET message_count = 0, cleared_version = ? WHERE stream_id = ?"
RECOUNT_CURRENT = """
UPDATE streams SET message_count = (
    SELECT count(*) FROM history AS h
    WHERE h.stream_id = streams.stream_id AND h.version > streams.cleared_version)
WHERE stream_id = ?
"""

# group_concat over an ordered subquery builds the whole JSON array inside SQLite, so a load
# is one row and one msgspec decode instead of one Python object per message.
LOAD_CURRENT = """
SELECT s.version, (SELECT '[' || group_concat(message, ',') || ']' FROM
                     (SELECT message FROM history
                      WHERE stream_id = s.stream_id AND version > s.cleared_version
                      ORDER BY version, idx))
FROM streams AS s WHERE s.stream_id = ?
"""
LOAD_RANGE = """
SELECT '[' || group_concat(message, ',') || ']' FROM
  (SELECT message FROM history WHERE stream_id = ? AND version > ? AND version <= ?
   ORDER BY version, idx)
"""
LAST_CLEAR_AT = "SELECT max(version) FROM clears WHERE stream_id = ? AND version <= ?"
VERSION_AT_TIME = "SELECT max(version) FROM events WHERE stream_id = ? AND recorded_at <= ?"
STREAM_VERSION = "SELECT version FROM streams WHERE stream_id = ?"

RESET_PROJECTION = """
DELETE FROM history;
DELETE FROM clears;
UPDATE streams SET message_count = 0, cleared_version = 0, tags = '[]';
UPDATE checkpoints SET position = 0 WHERE name = 'history';
"""

_EVENT_COLUMNS = "position, stream_id, version, event_id, type, recorded_at, data, meta, digest, chain"
READ_STREAM = f"""
SELECT {_EVENT_COLUMNS} FROM events
WHERE stream_id = ? AND version > ? AND version <= ? ORDER BY version
"""
READ_ALL = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"

_VERIFY_COLUMNS = """
stream_id, version, position, event_id, type, recorded_at, data, meta, payload_digest, digest,
chain, salt
"""
# In position (rowid) order, straight from the table: no index supplies a column, so a row
# whose bytes disagree with an index is checked as the row says.
VERIFY_ROWS = f"SELECT {_VERIFY_COLUMNS} FROM events ORDER BY position"
# One stream: the index finds its positions, the columns are then read from the rows.
VERIFY_ROWS_ONE = f"""
SELECT {_VERIFY_COLUMNS} FROM events
WHERE position IN (SELECT position FROM events WHERE stream_id = ?) ORDER BY position
"""
VERIFY_CATALOG = """
SELECT stream_id, key, version, chain, created_at, updated_at, message_count, cleared_version,
       tags
FROM streams {where}
"""
VERIFY_KEYS = "SELECT name, value, stream_id FROM stream_keys {where}"
VERIFY_HISTORY = "SELECT stream_id, version, idx, message FROM history {where}"
VERIFY_CLEARS = "SELECT stream_id, version FROM clears {where}"
# One stream again, to name the version where its projection tables differ from its events.
LOCATE_EVENTS = "SELECT version, position, type, data FROM events WHERE stream_id = ?"
LOCATE_HISTORY = "SELECT version, idx, message FROM history WHERE stream_id = ?"
LOCATE_CLEARS = "SELECT version FROM clears WHERE stream_id = ?"
VERIFY_ONE = "WHERE stream_id = ?"
QUICK_CHECK = "PRAGMA quick_check"
EVENT_AT_INDEX = "SELECT stream_id, version, position FROM events ORDER BY position LIMIT 1 OFFSET ?"
LEAVES = "SELECT position, digest, recorded_at FROM events WHERE position > ? ORDER BY position LIMIT ?"
FORK_ROWS = """
SELECT stream_id, version, data FROM events WHERE type = 'session_forked' AND data IS NOT NULL
"""
CHECKPOINT_TRUNCATE = "PRAGMA wal_checkpoint(TRUNCATE)"

ERASE_PAYLOAD = "UPDATE events SET data = NULL, salt = NULL WHERE stream_id = ? AND version = ?"
ERASE_CANDIDATES = """
SELECT version, type, data IS NULL, position, payload_digest FROM events WHERE stream_id = ?
ORDER BY version
"""
HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"

SESSIONS = """
SELECT s.stream_id, s.key, s.version, s.message_count, s.created_at, s.updated_at, s.tags
FROM streams AS s
WHERE {filters}
ORDER BY s.updated_at DESC, s.stream_id DESC
LIMIT ?
"""
SESSION_FILTER = (
    "EXISTS (SELECT 1 FROM stream_keys AS k "
    "WHERE k.stream_id = s.stream_id AND k.name = ? AND k.value = ?)"
)
SESSION_AFTER = "(s.updated_at < ? OR (s.updated_at = ? AND s.stream_id < ?))"
SESSION_ONE = """
SELECT s.stream_id, s.key, s.version, s.message_count, s.created_at, s.updated_at, s.tags
FROM streams AS s WHERE s.stream_id = ?
"""

STATS = """
SELECT (SELECT count(*) FROM streams), (SELECT coalesce(max(position), 0) FROM events),
       (SELECT count(*) FROM history)
"""


def statements(script: str) -> Iterator[str]:
    """Split a script into statements (triggers keep their inner semicolons)."""
    buffer: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        buffer.append(line)
        text = "\n".join(buffer)
        if text.rstrip().endswith(";") and sqlite3.complete_statement(text):
            yield text
            buffer = []
    if buffer:
        yield "\n".join(buffer)
