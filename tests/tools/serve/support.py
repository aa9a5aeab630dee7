"""Ledgers for the web-view tests: a rich session with every kind of event, and store wrappers."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    MessageAppended,
    RunRecorded,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
    _codec,
    open_store,
)
from chatledger.eventstore.postgres._url import parse_url
from chatledger.projections import ChatHistory
from tests.pgsupport import postgres_schema_url, postgres_test_schema

MAIN = SessionKey(user_id="u1", conversation_id="c1")
FORK = SessionKey(user_id="u1", conversation_id="c2")
FORK_OF_FORK = SessionKey(user_id="u1", conversation_id="c3")
PLAIN = SessionKey(session_id="plain")

# Versions in MAIN, as populate() writes them.
V_TOOL_CALL, V_TOOL_RESULT, V_RUN_OK, V_BLOCKS, V_RUN_ERROR = 3, 4, 6, 7, 8
V_CLEAR, V_ERASED, V_REDACTED, V_TAGGED = 9, 10, 12, 13

WRITES = frozenset({"append", "aappend", "erase", "rebuild", "catch_up", "aerase"})


def open_ledger(kind: str, tmp_path: Path) -> EventStore:
    """A fresh store: a SQLite file or a private PostgreSQL schema."""
    if kind == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    return open_store(postgres_schema_url(postgres_test_schema(tmp_path)))


def populate(store: EventStore) -> None:
    """MAIN with tool calls, content blocks, runs (ok and failed), a clear, an erasure and a
    tag; FORK forked from MAIN at v5 and FORK_OF_FORK from FORK; and PLAIN."""
    store.append(MAIN, [MessageAppended(message=SystemMessage(content="You are terse.")),
                        MessageAppended(message=HumanMessage(content="What time is it in Zürich?"))])
    store.append(MAIN, [
        MessageAppended(message=AIMessage(content="", tool_calls=[
            {"name": "clock", "args": {"city": "Zürich"}, "id": "call_1"}])),
        MessageAppended(message=ToolMessage(content="14:05", tool_call_id="call_1")),
        MessageAppended(message=AIMessage(content="It is 14:05.",
                                          usage_metadata={"input_tokens": 12, "output_tokens": 5,
                                                          "total_tokens": 17})),
        RunRecorded(run_id="run-ok", status="ok", history_version=2, model="fake-model",
                    latency_ms=12.5, input_versions=[2], output_versions=[3, 4, 5]),
    ])
    store.append(MAIN, [
        MessageAppended(message=HumanMessage(content=[
            {"type": "text", "text": "Look at this picture"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
            {"type": "audio", "format": "wav", "id": "clip-9"},
        ])),
        RunRecorded(run_id="run-bad", status="error", history_version=6,
                    input=[HumanMessage(content="the input of a failed run")],
                    error="ModelTimeoutError: no answer in 60 s", latency_ms=60000.0),
    ])
    ChatHistory(MAIN, store).clear(reason="start over")
    store.append(MAIN, [MessageAppended(message=HumanMessage(content="my card is 4111 1111")),
                        MessageAppended(message=AIMessage(content="noted"))])
    store.erase(MAIN, versions=[V_ERASED], reason="user asked")
    store.append(MAIN, [SessionTagged(added=["vip"])])
    ChatHistory(MAIN, store).fork(FORK, at_version=5)
    ChatHistory(FORK, store).add_messages([HumanMessage(content="and in Paris?")])
    ChatHistory(FORK, store).fork(FORK_OF_FORK)
    store.append(PLAIN, [MessageAppended(message=HumanMessage(content="hello"))])


class ReadOnly:
    """A store wrapper that fails the test on any write, and counts the reads it passes on."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.reads: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name in WRITES:
            raise AssertionError(f"the web view called the write method {name}()")
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.reads.append((name, kwargs))
            return attr(*args, **kwargs)
        return call


def append_future_event(store: EventStore, key: SessionKey, type_: str, data: str) -> None:
    """Append an event of type ``type_`` stored as ``data`` the way a newer chatledger would
    write one: digests, chain and catalog all as they should be (``data`` need not decode)."""
    sid = key.stream_id
    salt = _codec.new_salt()
    pdigest = _codec.payload_digest(data.encode(), salt)
    event_id = str(uuid.uuid4())
    at = "2030-01-01T00:00:00.000000Z"
    path = getattr(store, "path", None)
    if path is not None:
        conn: Any = sqlite3.connect(path, isolation_level=None)
        mark = "?"
    else:
        conn = psycopg.connect(parse_url(store.url).conninfo, autocommit=True)  # type: ignore[attr-defined]
        mark = "%s"

    def sql(text: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cursor = conn.execute(text.replace("?", mark), params)
        return list(cursor.fetchall()) if cursor.description else []

    try:
        position = sql("SELECT max(position) FROM events")[0][0] + 1
        found = sql("SELECT version, chain FROM streams WHERE stream_id = ?", (sid,))
        if not found:  # the session's first event
            sql("INSERT INTO streams (stream_id, key, version, chain, created_at, updated_at) "
                "VALUES (?, ?, 0, ?, ?, ?)", (sid, json.dumps(key.parts), _codec.GENESIS, at, at))
            found = [(0, _codec.GENESIS)]
        version, chain = found[0]
        version += 1
        digest = _codec.digest_of(position, sid, version, event_id, type_, at, pdigest,
                                  "{}")
        chain = _codec.chain_of(chain, digest)
        sql("INSERT INTO events (stream_id, version, position, event_id, type, recorded_at, "
            "data, meta, payload_digest, digest, chain, salt) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, version, position, event_id, type_, at, data, "{}", pdigest, digest,
             chain, salt))
        sql("UPDATE streams SET version = ?, chain = ?, updated_at = ? WHERE stream_id = ?",
            (version, chain, at, sid))
        if path is None:
            sql("UPDATE streams SET projected_version = ? WHERE stream_id = ?", (version, sid))
    finally:
        conn.close()
