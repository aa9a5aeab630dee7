"""Every SQL statement of the PostgreSQL backend, as named statements with bound parameters.

The tables mirror the SQLite backend's one for one (same names, same columns, same text
encodings), so a log can move between the two and every digest still verifies. Text columns
that are compared or sorted use the "C" collation, so they order exactly as SQLite orders them.
"""

from __future__ import annotations

# Key of the session-level advisory lock held while the schema is created or migrated; the
# second half is derived from the schema's name so that different schemas never wait on
# each other.
LOCK_CLASS = 0x63_6C_67  # "clg"

CHANNEL = "chatledger_events"

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS chatledger_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

# Version 1: the log, its head per stream, and the history projection.
#
# ``events`` is keyed by ``position``, the global order; (stream_id, version) is unique, so one
# stream is a contiguous index range and a lost race is a unique violation. Positions are
# handed out from the ``checkpoints`` row named 'log': updating that row inside the append's
# transaction holds its lock until commit, so positions become visible strictly in order (see
# PostgresStore's docstring). The row named 'history' is the history projection's checkpoint.
SCHEMA_V1 = """
CREATE TABLE checkpoints (
    name text COLLATE "C" PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO checkpoints (name, position) VALUES ('log', 0), ('history', 0);

CREATE TABLE events (
    position bigint NOT NULL CHECK (position >= 1),
    stream_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    event_id text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    recorded_at text COLLATE "C" NOT NULL,
    data text,
    meta text NOT NULL,
    payload_digest text NOT NULL,
    digest text NOT NULL,
    chain text NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_stream UNIQUE (stream_id, version),
    CONSTRAINT events_event_id UNIQUE (event_id)
);

-- The log is append-only: only a lawful erasure may null a payload, nothing else changes.
CREATE FUNCTION chatledger_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.data IS NOT NULL
       OR NEW.stream_id IS DISTINCT FROM OLD.stream_id OR NEW.version IS DISTINCT FROM OLD.version
       OR NEW.position IS DISTINCT FROM OLD.position OR NEW.event_id IS DISTINCT FROM OLD.event_id
       OR NEW.type IS DISTINCT FROM OLD.type OR NEW.recorded_at IS DISTINCT FROM OLD.recorded_at
       OR NEW.meta IS DISTINCT FROM OLD.meta
       OR NEW.payload_digest IS DISTINCT FROM OLD.payload_digest
       OR NEW.digest IS DISTINCT FROM OLD.digest OR NEW.chain IS DISTINCT FROM OLD.chain THEN
        RAISE EXCEPTION 'events are append-only';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION chatledger_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION chatledger_events_append_only();

-- One row per stream: the log's head (version, chain) plus the catalog projection's columns.
CREATE TABLE streams (
    stream_id text COLLATE "C" PRIMARY KEY,
    key text NOT NULL,
    version bigint NOT NULL,
    chain text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    message_count bigint NOT NULL DEFAULT 0,
    cleared_version bigint NOT NULL DEFAULT 0,
    tags text NOT NULL DEFAULT '[]'
);
CREATE INDEX streams_updated ON streams (updated_at, stream_id);

CREATE TABLE stream_keys (
    name text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (name, value, stream_id)
);

-- The history projection: every message, by the version of the event that brought it in.
-- Clears are rows of ``clears``; the current history is the rows after the last clear.
CREATE TABLE history (
    stream_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    idx integer NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (stream_id, version, idx)
);

CREATE TABLE clears (
    stream_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (stream_id, version)
);
"""

# (version, script): applied in order, each in its own transaction with its migrations row.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, SCHEMA_V1),)
SCHEMA_VERSION = MIGRATIONS[-1][0]

TABLES = ("chatledger_migrations", "checkpoints", "events", "streams", "stream_keys", "history",
          "clears")

# -- setup ---------------------------------------------------------------------------------
CURRENT_SCHEMA = "SELECT current_schema()"
SCHEMA_STATE = """
SELECT to_regclass('chatledger_migrations') IS NOT NULL, to_regclass('events') IS NOT NULL
"""
APPLIED_VERSION = "SELECT coalesce(max(version), 0) FROM chatledger_migrations"
RECORD_MIGRATION = "INSERT INTO chatledger_migrations (version) VALUES (%s)"
ADVISORY_LOCK = "SELECT pg_advisory_lock(%s, %s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%s, %s)"
SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"  # identifier quoted by psycopg.sql

# -- the write path ------------------------------------------------------------------------
# Takes the store-wide write lock (the 'log' row) and hands out ``n`` positions; the lock
# is held until commit. The database's clock stamps the events, so every app server shares
# one clock.
TAKE_POSITIONS = """
UPDATE checkpoints SET position = position + %s WHERE name = 'log'
RETURNING position,
  to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
"""
# The same lock without handing out positions (catch-up, rebuild, erase's checks).
LOCK_WRITE = "SELECT position FROM checkpoints WHERE name = 'log' FOR UPDATE"
LOCK_STREAM = "SELECT version, chain, updated_at FROM streams WHERE stream_id = %s FOR UPDATE"
GET_CHECKPOINT = "SELECT position FROM checkpoints WHERE name = %s"
SET_CHECKPOINT = "UPDATE checkpoints SET position = %s WHERE name = %s"
LAST_POSITION = "SELECT position FROM checkpoints WHERE name = 'log'"
POSITIONS = """
SELECT (SELECT position FROM checkpoints WHERE name = 'log'),
       (SELECT position FROM checkpoints WHERE name = 'history')
"""

FIND_EVENT_IDS = """
SELECT event_id, stream_id, version, position, payload_digest FROM events
WHERE event_id = ANY(%s)
"""

INSERT_EVENT = """
INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data, meta,
                    payload_digest, digest, chain)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_STREAM = """
INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s)
"""
# The head and the catalog's message count change in one statement.
UPDATE_STREAM_HEAD = """
UPDATE streams SET version = %s, chain = %s, updated_at = %s, message_count = message_count + %s
WHERE stream_id = %s
"""
INSERT_KEY_PART = "INSERT INTO stream_keys (name, value, stream_id) VALUES (%s, %s, %s)"
NOTIFY = "SELECT pg_notify(%s, %s)"

# -- the history projection ----------------------------------------------------------------
INSERT_HISTORY = "INSERT INTO history (stream_id, version, idx, message) VALUES (%s, %s, %s, %s)"
INSERT_CLEAR = "INSERT INTO clears (stream_id, version) VALUES (%s, %s)"
CLEAR_CATALOG = "UPDATE streams SET message_count = 0, cleared_version = %s WHERE stream_id = %s"
DELETE_HISTORY_VERSION = "DELETE FROM history WHERE stream_id = %s AND version = %s"
ADD_MESSAGE_COUNT = "UPDATE streams SET message_count = message_count + %s WHERE stream_id = %s"
RECOUNT_CURRENT = """
UPDATE streams AS s SET message_count = (
    SELECT count(*) FROM history AS h
    WHERE h.stream_id = s.stream_id AND h.version > s.cleared_version)
WHERE s.stream_id = %s
"""
GET_TAGS = "SELECT tags FROM streams WHERE stream_id = %s"
SET_TAGS = "UPDATE streams SET tags = %s WHERE stream_id = %s"
CATCH_UP_PAGE = """
SELECT stream_id, version, position, type, data FROM events
WHERE position > %s ORDER BY position LIMIT %s
"""

RESET_PROJECTION = (
    "DELETE FROM history",
    "DELETE FROM clears",
    "UPDATE streams SET message_count = 0, cleared_version = 0, tags = '[]'",
    "UPDATE checkpoints SET position = 0 WHERE name = 'history'",
)

# -- reads ---------------------------------------------------------------------------------
_EVENT_COLUMNS = "position, stream_id, version, event_id, type, recorded_at, data, meta, digest, chain"
READ_STREAM = f"""
SELECT {_EVENT_COLUMNS} FROM events
WHERE stream_id = %s AND version > %s AND version <= %s ORDER BY version
"""
# ``until_time`` cuts at the last version recorded at or before it, in the same snapshot.
READ_STREAM_UNTIL_TIME = f"""
SELECT {_EVENT_COLUMNS} FROM events
WHERE stream_id = %(sid)s AND version > %(after)s AND version <= %(upper)s
  AND version <= coalesce((SELECT max(version) FROM events
                           WHERE stream_id = %(sid)s AND recorded_at <= %(time)s), 0)
ORDER BY version
"""
READ_ALL = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > %s ORDER BY position LIMIT %s"
READ_ALL_UNLIMITED = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > %s ORDER BY position"
STREAM_VERSION = "SELECT version FROM streams WHERE stream_id = %s"

# string_agg builds the whole JSON array inside PostgreSQL, so a load is one row and one
# msgspec decode instead of one Python object per message.
LOAD_CURRENT = """
SELECT s.version, (SELECT '[' || string_agg(h.message, ',' ORDER BY h.version, h.idx) || ']'
                   FROM history AS h
                   WHERE h.stream_id = s.stream_id AND h.version > s.cleared_version)
FROM streams AS s WHERE s.stream_id = %s
"""
# The history as of a version (given) or a time (the last version recorded by then), in one
# statement and so one snapshot: (head version, target version, messages as a JSON array).
LOAD_AT = """
WITH target AS (
    SELECT coalesce(%(version)s::bigint,
                    (SELECT max(version) FROM events
                     WHERE stream_id = %(sid)s AND recorded_at <= %(time)s::text),
                    0) AS v
)
SELECT (SELECT version FROM streams WHERE stream_id = %(sid)s), t.v,
       (SELECT '[' || string_agg(h.message, ',' ORDER BY h.version, h.idx) || ']'
        FROM history AS h
        WHERE h.stream_id = %(sid)s AND h.version <= t.v
          AND h.version > coalesce((SELECT max(c.version) FROM clears AS c
                                    WHERE c.stream_id = %(sid)s AND c.version <= t.v), 0))
FROM target AS t
"""

VERIFY_ROWS = """
SELECT stream_id, version, position, event_id, type, recorded_at, data, meta, payload_digest,
       digest, chain
FROM events {where} ORDER BY stream_id, version
"""
VERIFY_HEADS = "SELECT stream_id, version, chain FROM streams {where} ORDER BY stream_id"
VERIFY_ONE = "WHERE stream_id = %s"
# verify reads the heads and then every row: one snapshot for both.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

ERASE_PAYLOAD = "UPDATE events SET data = NULL WHERE stream_id = %s AND version = %s"
ERASE_CANDIDATES = """
SELECT version, type, data IS NULL FROM events WHERE stream_id = %s ORDER BY version
"""

_SESSION_COLUMNS = (
    "s.stream_id, s.key, s.version, s.message_count, s.created_at, s.updated_at, s.tags"
)
SESSIONS = f"""
SELECT {_SESSION_COLUMNS}
FROM streams AS s
WHERE {{filters}}
ORDER BY s.updated_at DESC, s.stream_id DESC
LIMIT %s
"""
SESSION_FILTER = (
    "EXISTS (SELECT 1 FROM stream_keys AS k "
    "WHERE k.stream_id = s.stream_id AND k.name = %s AND k.value = %s)"
)
SESSION_AFTER = "(s.updated_at < %s OR (s.updated_at = %s AND s.stream_id < %s))"
SESSION_ONE = f"SELECT {_SESSION_COLUMNS} FROM streams AS s WHERE s.stream_id = %s"

STATS = """
SELECT (SELECT count(*) FROM streams), (SELECT position FROM checkpoints WHERE name = 'log'),
       (SELECT count(*) FROM history),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
          AND c.relkind = 'r'
          AND c.relname = ANY(%s))
"""

LISTEN = "LISTEN chatledger_events"
