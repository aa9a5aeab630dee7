"""Every SQL statement of the PostgreSQL backend, as named statements with bound parameters.

The tables mirror the SQLite backend's one for one (same names, same columns, same text
encodings), so a log can move between the two and every digest still verifies. Text columns
that are compared or sorted use the "C" collation, so they order exactly as SQLite orders them.
"""

from __future__ import annotations

import functools
import zlib

# Key of the session-level advisory lock held while the schema is created or migrated; the
# second half is derived from the schema's name so that different schemas never wait on
# each other.
LOCK_CLASS = 0x63_6C_67  # "clg"

CHANNEL = "chatledger_events"


@functools.cache
def schema_key(schema: str) -> int:
    """A signed 32-bit key for the schema's advisory locks (with LOCK_CLASS, LISTENERS_CLASS
    and APPENDS_CLASS)."""
    key = zlib.crc32(schema.encode())
    return key - 2**32 if key >= 2**31 else key


MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS chatledger_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

# Version 1: the log, its head per stream, and the history projection.
#
# ``events`` is keyed by ``position``, the global order; (stream_id, version) is unique, so one
# stream is a contiguous index range and a lost race is a unique violation. Version 1 handed
# positions out from the ``checkpoints`` row named 'log', locked by every append until its
# commit; version 2 replaces that row (below).
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

# Version 2: no store-wide row that every append must lock.
#
# Positions come from the appending transaction's id (``pg_current_xact_id() << 20``, plus
# the event's index), so appends to different streams never wait on each other, and their
# commits share WAL flushes. The history projection's checkpoint moves from the single
# 'history' row to ``streams.projected_version``. Positions given out under version 1 are
# counted from 1, below any transaction-id position, so the order of the log is unchanged.
SCHEMA_V2 = """
DO $$
BEGIN
    IF (SELECT position FROM checkpoints WHERE name = 'log')
       >= (pg_current_xact_id()::text::bigint << 20) THEN
        RAISE EXCEPTION 'the log holds positions beyond this server''s transaction ids';
    END IF;
END
$$;
ALTER TABLE streams ADD COLUMN projected_version bigint NOT NULL DEFAULT 0;
UPDATE streams AS s SET projected_version = coalesce(
    (SELECT max(e.version) FROM events AS e
     WHERE e.stream_id = s.stream_id
       AND e.position <= (SELECT position FROM checkpoints WHERE name = 'history')), 0);
CREATE INDEX streams_unprojected ON streams (stream_id) WHERE projected_version < version;
DROP TABLE checkpoints;

-- An append's first step, in one call: the table locks, the stream's lock, then (in a fresh
-- snapshot, as a volatile function's statements each take one) the stream's head together
-- with this transaction's id, assigned only now, and the database's clock.
CREATE FUNCTION chatledger_begin_append(lock_key text, sid text)
RETURNS TABLE (xid bigint, now text, version bigint, chain text, updated_at text,
               projected_version bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    LOCK TABLE events, history IN ROW EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    RETURN QUERY
    SELECT pg_current_xact_id()::text::bigint,
           to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           s.version, s.chain::text, s.updated_at::text, s.projected_version
    FROM (SELECT 1) AS one LEFT JOIN streams AS s ON s.stream_id = sid;
END
$$;

-- The common append in one call and one implicit transaction: events that only add messages,
-- to a session that exists and whose projection is current. Digests and chain links are the
-- same SHA-256 texts the client computes on the other path (eventstore._codec.digest_of and
-- chain_of). Returns 'ok' with the new version and the first position; 'conflict' with the
-- current version when it is not ``expected`` (-1: no expectation); 'fallback' when the
-- session does not exist or its projection lags, for the client's general path.
CREATE FUNCTION chatledger_append_messages(lock_key text, sid text, expected bigint,
                                           project boolean, meta text, events json,
                                           history json)
RETURNS TABLE (status text, version bigint, first_position bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head record;
    xid bigint;
    stamp text;
    pos bigint;
    v bigint;
    link text;
    digest text;
    e record;
    added bigint := 0;
BEGIN
    LOCK TABLE events, history IN ROW EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    SELECT s.version, s.chain, s.updated_at, s.projected_version INTO head
    FROM streams AS s WHERE s.stream_id = sid;
    IF NOT FOUND OR (project AND head.projected_version < head.version) THEN
        RETURN QUERY SELECT 'fallback'::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF expected >= 0 AND expected <> head.version THEN
        RETURN QUERY SELECT 'conflict'::text, head.version, NULL::bigint;
        RETURN;
    END IF;
    xid := pg_current_xact_id()::text::bigint;
    stamp := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    IF stamp < head.updated_at THEN
        stamp := head.updated_at;
    END IF;
    link := head.chain;
    v := head.version;
    pos := xid << 20;
    FOR e IN SELECT * FROM json_to_recordset(events) AS x(i text, t text, d text, p text) LOOP
        v := v + 1;
        digest := encode(sha256(convert_to(concat_ws(chr(31), pos::text, sid, v::text, e.i,
                                                     e.t, stamp, e.p, meta), 'UTF8')), 'hex');
        link := encode(sha256(convert_to(link || digest, 'UTF8')), 'hex');
        INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data,
                            meta, payload_digest, digest, chain)
        VALUES (sid, v, pos, e.i, e.t, stamp, e.d, meta, e.p, digest, link);
        pos := pos + 1;
    END LOOP;
    IF project THEN
        INSERT INTO history (stream_id, version, idx, message)
        SELECT sid, head.version + x.v, x.k, x.m
        FROM json_to_recordset(history) AS x(v bigint, k integer, m text);
        GET DIAGNOSTICS added = ROW_COUNT;
    END IF;
    UPDATE streams AS s
    SET version = v, chain = link, updated_at = stamp, message_count = s.message_count + added,
        projected_version = CASE WHEN project THEN v ELSE s.projected_version END
    WHERE s.stream_id = sid;
    RETURN QUERY SELECT 'ok'::text, v, xid << 20;
END
$$;
"""

# Version 3: a per-event salt, stored with the payload and erased with it, so the payload digest
# kept after an erasure cannot be matched against guesses of the erased text. Events written
# before keep a NULL salt and their unsalted digests, which still verify. The one-call append
# takes each event's salt (``s``) with its payload; a client of version 2 sends none, and its
# unsalted digests are stored with a NULL salt, which verifies the same way.
SCHEMA_V3 = """
ALTER TABLE events ADD COLUMN salt text;

CREATE OR REPLACE FUNCTION chatledger_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.data IS NOT NULL OR NEW.salt IS NOT NULL
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

CREATE OR REPLACE FUNCTION chatledger_append_messages(lock_key text, sid text, expected bigint,
                                           project boolean, meta text, events json,
                                           history json)
RETURNS TABLE (status text, version bigint, first_position bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head record;
    xid bigint;
    stamp text;
    pos bigint;
    v bigint;
    link text;
    digest text;
    e record;
    added bigint := 0;
BEGIN
    LOCK TABLE events, history IN ROW EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    SELECT s.version, s.chain, s.updated_at, s.projected_version INTO head
    FROM streams AS s WHERE s.stream_id = sid;
    IF NOT FOUND OR (project AND head.projected_version < head.version) THEN
        RETURN QUERY SELECT 'fallback'::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF expected >= 0 AND expected <> head.version THEN
        RETURN QUERY SELECT 'conflict'::text, head.version, NULL::bigint;
        RETURN;
    END IF;
    xid := pg_current_xact_id()::text::bigint;
    stamp := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    IF stamp < head.updated_at THEN
        stamp := head.updated_at;
    END IF;
    link := head.chain;
    v := head.version;
    pos := xid << 20;
    FOR e IN SELECT * FROM json_to_recordset(events) AS x(i text, t text, d text, p text, s text) LOOP
        v := v + 1;
        digest := encode(sha256(convert_to(concat_ws(chr(31), pos::text, sid, v::text, e.i,
                                                     e.t, stamp, e.p, meta), 'UTF8')), 'hex');
        link := encode(sha256(convert_to(link || digest, 'UTF8')), 'hex');
        INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data,
                            meta, payload_digest, digest, chain, salt)
        VALUES (sid, v, pos, e.i, e.t, stamp, e.d, meta, e.p, digest, link, e.s);
        pos := pos + 1;
    END LOOP;
    IF project THEN
        INSERT INTO history (stream_id, version, idx, message)
        SELECT sid, head.version + x.v, x.k, x.m
        FROM json_to_recordset(history) AS x(v bigint, k integer, m text);
        GET DIAGNOSTICS added = ROW_COUNT;
    END IF;
    UPDATE streams AS s
    SET version = v, chain = link, updated_at = stamp, message_count = s.message_count + added,
        projected_version = CASE WHEN project THEN v ELSE s.projected_version END
    WHERE s.stream_id = sid;
    RETURN QUERY SELECT 'ok'::text, v, xid << 20;
END
$$;
"""

# Advisory-lock classes (with the schema's ``schema_key``) that let an append skip the
# notification when no tail listens to its schema. A tail holds LISTENERS shared for as long as
# its connection: it takes it after its LISTEN, then takes and drops APPENDS exclusively, which
# waits for every append already past its check, and only then reads the log. An append that
# sends no notification after its COMMIT holds APPENDS shared until it commits (appends never
# wait on each other for it) and then tests LISTENERS, taking it exclusively and dropping it
# within one expression: refused, a tail listens, and the append notifies inside its
# transaction. So every commit either notifies a tail that listens or lands before that tail's
# first read: no event is left unread.
LISTENERS_CLASS = 0x63_6C_6C  # "cll"
APPENDS_CLASS = 0x63_6C_61  # "cla"

# Version 4: the one-call append also starts a session, and notifies only when a tail listens.
# ``key`` is the session key's parts as the JSON object stored in ``streams.key``: a stream that
# does not exist yet is created, with its key parts, in the same transaction, so a session's
# first turn is one round trip like every other. The head of a new stream is version 0 and the
# genesis chain, as on the client. ``notify`` is the notification's payload when the client
# sends none after the COMMIT (NULL when it does); ``listening`` tells the client whether a tail
# listened, so that it sends its own notification after the COMMIT while one does (a
# notification inside the transaction serialises that commit with every other notifying one).
# Version 3's seven-argument function stays, for clients of that version during an upgrade.
SCHEMA_V4 = """
CREATE FUNCTION chatledger_append_messages(lock_key text, sid text, expected bigint,
                                           project boolean, meta text, events json,
                                           history json, key text, listen_key integer,
                                           notify text)
RETURNS TABLE (status text, version bigint, first_position bigint, listening boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head record;
    created boolean;
    listening boolean;
    xid bigint;
    stamp text;
    pos bigint;
    v bigint;
    link text;
    digest text;
    e record;
    added bigint := 0;
BEGIN
    LOCK TABLE events, history IN ROW EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    SELECT s.version, s.chain, s.updated_at, s.projected_version INTO head
    FROM streams AS s WHERE s.stream_id = sid;
    created := NOT FOUND;
    IF created THEN
        SELECT 0::bigint AS version, repeat('0', 64) AS chain, ''::text AS updated_at,
               0::bigint AS projected_version INTO head;
    ELSIF project AND head.projected_version < head.version THEN
        RETURN QUERY SELECT 'fallback'::text, NULL::bigint, NULL::bigint, NULL::boolean;
        RETURN;
    END IF;
    IF expected >= 0 AND expected <> head.version THEN
        RETURN QUERY SELECT 'conflict'::text, head.version, NULL::bigint, NULL::boolean;
        RETURN;
    END IF;
    IF notify IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(@APPENDS@, listen_key);
    END IF;
    listening := CASE WHEN pg_try_advisory_lock(@LISTENERS@, listen_key)
                      THEN NOT pg_advisory_unlock(@LISTENERS@, listen_key) ELSE true END;
    IF listening AND notify IS NOT NULL THEN
        PERFORM pg_notify('@CHANNEL@', notify);
    END IF;
    xid := pg_current_xact_id()::text::bigint;
    stamp := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    IF stamp < head.updated_at THEN
        stamp := head.updated_at;
    END IF;
    link := head.chain;
    v := head.version;
    pos := xid << 20;
    FOR e IN SELECT * FROM json_to_recordset(events) AS x(i text, t text, d text, p text, s text) LOOP
        v := v + 1;
        digest := encode(sha256(convert_to(concat_ws(chr(31), pos::text, sid, v::text, e.i,
                                                     e.t, stamp, e.p, meta), 'UTF8')), 'hex');
        link := encode(sha256(convert_to(link || digest, 'UTF8')), 'hex');
        INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, data,
                            meta, payload_digest, digest, chain, salt)
        VALUES (sid, v, pos, e.i, e.t, stamp, e.d, meta, e.p, digest, link, e.s);
        pos := pos + 1;
    END LOOP;
    IF project THEN
        INSERT INTO history (stream_id, version, idx, message)
        SELECT sid, head.version + x.v, x.k, x.m
        FROM json_to_recordset(history) AS x(v bigint, k integer, m text);
        GET DIAGNOSTICS added = ROW_COUNT;
    END IF;
    IF created THEN
        INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at,
                             message_count, projected_version)
        VALUES (sid, key, v, link, stamp, stamp, added, CASE WHEN project THEN v ELSE 0 END);
        INSERT INTO stream_keys (name, value, stream_id)
        SELECT k.key, k.value, sid FROM json_each_text(key::json) AS k;
    ELSE
        UPDATE streams AS s
        SET version = v, chain = link, updated_at = stamp,
            message_count = s.message_count + added,
            projected_version = CASE WHEN project THEN v ELSE s.projected_version END
        WHERE s.stream_id = sid;
    END IF;
    RETURN QUERY SELECT 'ok'::text, v, xid << 20, listening;
END
$$;
""".replace("@APPENDS@", str(APPENDS_CLASS)).replace("@LISTENERS@", str(LISTENERS_CLASS)) \
    .replace("@CHANNEL@", CHANNEL)

# (version, script): applied in order, each in its own transaction with its migrations row.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, SCHEMA_V1), (2, SCHEMA_V2), (3, SCHEMA_V3),
                                          (4, SCHEMA_V4))
SCHEMA_VERSION = MIGRATIONS[-1][0]
# The oldest version whose tables this version reads as they are (version 4 adds a function).
READABLE_FROM = 3

TABLES = ("chatledger_migrations", "events", "streams", "stream_keys", "history", "clears")

# -- setup ---------------------------------------------------------------------------------
CURRENT_SCHEMA = "SELECT current_schema()"
# Whether the schema exists, and holds chatledger's migrations table and an ``events`` table.
LEDGER_STATE = """
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s),
       to_regclass(quote_ident(%(schema)s) || '.chatledger_migrations') IS NOT NULL,
       to_regclass(quote_ident(%(schema)s) || '.events') IS NOT NULL
"""
APPLIED_VERSION = "SELECT coalesce(max(version), 0) FROM chatledger_migrations"
RECORD_MIGRATION = "INSERT INTO chatledger_migrations (version) VALUES (%s)"
ADVISORY_LOCK = "SELECT pg_advisory_lock(%s, %s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%s, %s)"
CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"  # identifier quoted by psycopg.sql

BEGIN = "BEGIN"
COMMIT = "COMMIT"

# -- the write path ------------------------------------------------------------------------
# Positions come from the writing transaction's id: ``xid8 << POSITION_BITS`` plus the event's
# index in its append (see PostgresStore's docstring for why no reader can overtake a commit).
POSITION_BITS = 20
MAX_APPEND = 1 << POSITION_BITS
# The stream's lock: a transaction-scoped advisory lock on the schema-qualified stream id. It
# assigns no transaction id, so the id taken after it is newer than every earlier holder's.
# Every writing transaction first takes ROW EXCLUSIVE on the tables it may write (appends run
# side by side), and only then stream locks; a rebuild takes SHARE ROW EXCLUSIVE, which waits
# for running writers and holds off new ones, so the two never deadlock.
LOCK_TABLES = "LOCK TABLE events, history IN ROW EXCLUSIVE MODE"
LOCK_LOG = "LOCK TABLE events, history IN SHARE ROW EXCLUSIVE MODE"
LOCK_STREAM = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
LOCK_STREAMS = """
SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))
FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k OFFSET 0) AS sorted
"""
APPEND_MESSAGES_CALL = """
SELECT * FROM chatledger_append_messages(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
# Locks, then reads the head with this transaction's id (see chatledger_begin_append).
BEGIN_APPEND = "SELECT * FROM chatledger_begin_append(%s, %s)"
# Everything a reader may see: positions below the oldest transaction still running. Each
# reading statement computes it from its own snapshot.
HORIZON = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {POSITION_BITS})"
LAST_POSITION = f"""
SELECT coalesce(max(position), 0) FROM events WHERE position < (SELECT {HORIZON})
"""
EVENT_COUNT = f"SELECT count(*) FROM events WHERE position < (SELECT {HORIZON})"
UNPROJECTED = """
SELECT stream_id FROM streams WHERE projected_version < version AND stream_id > %s
ORDER BY stream_id LIMIT %s
"""
ANY_UNPROJECTED = "SELECT EXISTS (SELECT 1 FROM streams WHERE projected_version < version)"

FIND_EVENT_IDS = """
SELECT event_id, stream_id, version, position, payload_digest, salt FROM events
WHERE event_id = ANY(%s)
"""

_EVENT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


@functools.cache
def insert_events(n: int) -> str:
    """One INSERT for ``n`` events (rows of (stream_id, version, position, event_id, type,
    recorded_at, data, meta, payload_digest, digest, chain, salt))."""
    return ("INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, "
            "data, meta, payload_digest, digest, chain, salt) VALUES "
            + ", ".join([_EVENT_ROW] * n))


INSERT_STREAM = """
INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at, projected_version)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
# The head, the catalog's message count and the projection's checkpoint change in one statement.
UPDATE_STREAM_HEAD = """
UPDATE streams SET version = %s, chain = %s, updated_at = %s, message_count = message_count + %s,
                   projected_version = %s
WHERE stream_id = %s
"""
INSERT_KEY_PART = "INSERT INTO stream_keys (name, value, stream_id) VALUES (%s, %s, %s)"
NOTIFY = "SELECT pg_notify(%s, %s)"
# A tail's registration, after its LISTEN and before its first read (see LISTENERS_CLASS).
LISTENING = "SELECT pg_advisory_lock_shared(%s, %s)"
AWAIT_APPENDS = "SELECT pg_advisory_lock(%s, %s)"
RELEASE_APPENDS = "SELECT pg_advisory_unlock(%s, %s)"

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
# The events of the given (locked) streams that the projection has not applied yet.
CATCH_UP_EVENTS = """
SELECT e.stream_id, e.version, e.type, e.data
FROM streams AS s JOIN events AS e ON e.stream_id = s.stream_id AND e.version > s.projected_version
WHERE s.stream_id = ANY(%s)
ORDER BY e.stream_id, e.version
"""
SET_PROJECTED = """
UPDATE streams SET projected_version = %s, message_count = message_count + %s
WHERE stream_id = %s
"""
RESET_PROJECTION = (
    "DELETE FROM history",
    "DELETE FROM clears",
    "UPDATE streams SET message_count = 0, cleared_version = 0, tags = '[]', "
    "projected_version = 0",
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
# The horizon is a scalar subquery, so it is computed once and bounds the index scan.
READ_ALL = f"""
SELECT {_EVENT_COLUMNS} FROM events
WHERE position > %s AND position < (SELECT {HORIZON}) ORDER BY position LIMIT %s
"""
READ_ALL_UNLIMITED = f"""
SELECT {_EVENT_COLUMNS} FROM events
WHERE position > %s AND position < (SELECT {HORIZON}) ORDER BY position
"""
# Committed events that a transaction still running keeps behind the horizon.
HELD_BACK = f"SELECT EXISTS (SELECT 1 FROM events WHERE position >= (SELECT {HORIZON}))"
STREAM_VERSION = "SELECT version FROM streams WHERE stream_id = %s"

# string_agg builds the whole JSON array inside PostgreSQL, so a load is one row and one
# msgspec decode instead of one Python object per message.
LOAD_CURRENT = """
SELECT s.version, (SELECT '[' || string_agg(h.message, ',' ORDER BY h.version, h.idx) || ']'
                   FROM history AS h
                   WHERE h.stream_id = s.stream_id AND h.version > s.cleared_version),
       s.projected_version < s.version
FROM streams AS s WHERE s.stream_id = %s
"""
# The history as of a version (given) or a time (the last version recorded by then), in one
# statement and so one snapshot: (head version, target version, messages as a JSON array,
# whether the projection is behind on this stream).
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
                                    WHERE c.stream_id = %(sid)s AND c.version <= t.v), 0)),
       (SELECT projected_version < version FROM streams WHERE stream_id = %(sid)s)
FROM target AS t
"""

_VERIFY_COLUMNS = """
stream_id, version, position, event_id, type, recorded_at, data, meta, payload_digest, digest,
chain, salt
"""
# Every column comes from the row itself (the plan reads the heap, never an index-only scan of
# these columns); positions may have gaps here (they come from transaction ids).
VERIFY_ROWS = f"SELECT {_VERIFY_COLUMNS} FROM events {{where}} ORDER BY position"
VERIFY_CATALOG = """
SELECT stream_id, key, version, chain, created_at, updated_at, message_count, cleared_version,
       tags, projected_version
FROM streams {where}
"""
VERIFY_KEYS = "SELECT name, value, stream_id FROM stream_keys {where}"
VERIFY_HISTORY = "SELECT stream_id, version, idx, message FROM history {where}"
VERIFY_CLEARS = "SELECT stream_id, version FROM clears {where}"
# One stream again, to name the version where its projection tables differ from its events.
LOCATE_EVENTS = "SELECT version, position, type, data FROM events WHERE stream_id = %s"
LOCATE_HISTORY = "SELECT version, idx, message FROM history WHERE stream_id = %s"
LOCATE_CLEARS = "SELECT version FROM clears WHERE stream_id = %s"
VERIFY_ONE = "WHERE stream_id = %s"
EVENT_AT_INDEX = """
SELECT stream_id, version, position FROM events ORDER BY position LIMIT 1 OFFSET %s
"""
# verify reads the heads and then every row: one snapshot for both.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# The log head covers the prefix below the reader horizon: no commit still running can add
# an event before it.
LEAVES = f"""
SELECT position, digest, recorded_at FROM events
WHERE position > %s AND position < (SELECT {HORIZON}) ORDER BY position LIMIT %s
"""
FORK_ROWS = """
SELECT stream_id, version, data FROM events WHERE type = 'session_forked' AND data IS NOT NULL
"""
# A rewrite of each table into new files: no dead row version keeps an erased payload.
PURGE = ("VACUUM FULL events", "VACUUM FULL history")

ERASE_PAYLOAD = "UPDATE events SET data = NULL, salt = NULL WHERE stream_id = %s AND version = %s"
ERASE_CANDIDATES = """
SELECT version, type, data IS NULL, position, payload_digest FROM events WHERE stream_id = %s
ORDER BY version
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
SELECT (SELECT count(*) FROM streams), (SELECT count(*) FROM events),
       (SELECT count(*) FROM history),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
          AND c.relkind = 'r'
          AND c.relname = ANY(%s))
"""

LISTEN = "LISTEN chatledger_events"
