"""``langgraph``: a graph turn with ``ChatledgerSaver`` against LangGraph's own savers.

The graph is one ``MessagesState`` node that answers with a fixed message, as the smallest
chat app. A turn is ``graph.invoke({"messages": [HumanMessage]}, thread)`` on a thread seeded
with exactly ``history`` messages: on SQLite against ``SqliteSaver`` (each on its own file), on
PostgreSQL against ``PostgresSaver`` (each in its own scratch schema of the same server). Then
the bytes each stores after a 200-turn conversation, and after half of it, to show how storage
grows with the number of messages.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatledger.tools.bench._data import AI, HUMAN, sqlite_url
from chatledger.tools.bench._harness import (
    Bench,
    Skip,
    fmt,
    measure_each_together,
    progress,
    ratio,
    speedup,
)

GROUP = "langgraph"
Turn = Callable[[int], object]


def _graph(saver: Any) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.graph import START, MessagesState, StateGraph

    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(AI)]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


def _thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def _seed(graph: Any, thread: str, history: int) -> None:
    """One run that leaves exactly ``history`` messages on the thread (the reply included)."""
    from langchain_core.messages import HumanMessage

    graph.invoke({"messages": [HumanMessage(f"{HUMAN} {i}") for i in range(history - 1)]},
                 _thread(thread))


_PREFIXES = itertools.count()


def _turn_op(graph: Any, history: int, count: int) -> tuple[Turn, int]:
    """Call ``i`` runs one turn on its own thread, seeded with ``history`` messages."""
    from langchain_core.messages import HumanMessage

    prefix = f"turn-{history}-{next(_PREFIXES)}"
    for i in range(-2, count):
        _seed(graph, f"{prefix}-{i}", history)
    return (lambda i: graph.invoke({"messages": [HumanMessage(HUMAN)]},
                                   _thread(f"{prefix}-{i}"))), count


def _conversation(graph: Any, thread: str, turns: int) -> None:
    from langchain_core.messages import HumanMessage

    for _ in range(turns):
        graph.invoke({"messages": [HumanMessage(HUMAN)]}, _thread(thread))


def _sqlite_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _postgres_bytes(admin: Any, schema: str) -> int:
    row = admin.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (schema,)).fetchone()
    return int(row[0])


def run(bench: Bench) -> None:
    """Run the group: turns at history 10 and 1,000 on SQLite and PostgreSQL, bytes stored."""
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver

        from chatledger.eventstore import open_store
        from chatledger.runtime.langgraph import ChatledgerSaver
    except ImportError as e:
        raise Skip(f"langgraph or langgraph-checkpoint-sqlite is not installed ({e})") from e
    folder = bench.tmp / "langgraph"
    folder.mkdir()
    ours_store = open_store(sqlite_url(folder / "chatledger.db"))
    bench.on_exit(ours_store.close)
    lg_conn = sqlite3.connect(folder / "langgraph.db", check_same_thread=False)
    bench.on_exit(lg_conn.close)
    ours, theirs = _graph(ChatledgerSaver(ours_store)), _graph(SqliteSaver(lg_conn))
    _turns(bench, "SQLite", "SqliteSaver", ours, theirs)
    _storage(bench, "SQLite", "SqliteSaver",
             lambda: _sqlite_pair(folder, open_store, ChatledgerSaver, SqliteSaver))
    _postgres(bench)


def _turns(bench: Bench, backend: str, rival: str, ours: Any, theirs: Any) -> None:
    for history, quick_history in ((10, 10), (1_000, 200)):
        size = bench.size(history, quick_history)
        progress(f"{backend}: seeding threads of {size:,} messages")
        t = measure_each_together({
            "chatledger": _turn_op(ours, size, bench.size(30, 5)),
            rival: _turn_op(theirs, size, bench.size(30, 5)),
        })
        a = bench.record("langgraph.turn", "chatledger", {"history": size, "backend": backend},
                         t["chatledger"])
        b = bench.record("langgraph.turn", rival, {"history": size, "backend": backend}, t[rival])
        bench.target(GROUP, f"one graph turn at history {size:,}, {backend}, vs {rival}",
                     chatledger=fmt(a.value, "ms"), langchain=fmt(b.value, "ms"),
                     goal="faster", actual=speedup(b.value, a.value), ok=a.value < b.value)


def _sqlite_pair(folder: Path, open_store: Any, ours_cls: Any, theirs_cls: Any
                 ) -> tuple[Any, Any, Callable[[], int], Callable[[], int], Callable[[], None]]:
    store = open_store(sqlite_url(folder / "size-chatledger.db"))
    conn = sqlite3.connect(folder / "size-langgraph.db", check_same_thread=False)

    def close() -> None:
        store.close()
        conn.close()
    return (_graph(ours_cls(store)), _graph(theirs_cls(conn)),
            lambda: _sqlite_bytes(folder / "size-chatledger.db"),
            lambda: _sqlite_bytes(folder / "size-langgraph.db"), close)


def _storage(bench: Bench, backend: str, rival: str, make: Callable[[], Any]) -> None:
    """Bytes stored after half and all of a 200-turn conversation on a fresh database."""
    turns = bench.size(200, 40)
    ours, theirs, ours_bytes, theirs_bytes, close = make()
    sizes: dict[str, list[int]] = {"chatledger": [], rival: []}
    progress(f"{backend}: a {turns}-turn conversation with each saver")
    for _ in range(2):
        _conversation(ours, "size", turns // 2)
        _conversation(theirs, "size", turns // 2)
        sizes["chatledger"].append(ours_bytes())
        sizes[rival].append(theirs_bytes())
    close()
    for system, (half, full) in sizes.items():
        bench.record("langgraph.bytes", system, {"turns": turns, "backend": backend}, full,
                     unit="B")
        bench.record("langgraph.bytes", system, {"turns": turns // 2, "backend": backend}, half,
                     unit="B")
    (a_half, a_full), (b_half, b_full) = sizes["chatledger"], sizes[rival]
    bench.target(GROUP, f"bytes stored after {turns} turns, {backend}, vs {rival}",
                 chatledger=f"{a_full / 1024:,.0f} KiB", langchain=f"{b_full / 1024:,.0f} KiB",
                 goal="—", actual=f"{b_full / a_full:.1f}x less", ok=None)
    bench.target(GROUP, f"growth of the bytes stored, {turns // 2} → {turns} turns, {backend}",
                 chatledger=ratio(a_full / a_half), langchain=ratio(b_full / b_half),
                 goal="linear (≤ 2.2x)", actual=ratio(a_full / a_half), ok=a_full / a_half <= 2.2)


def _postgres(bench: Bench) -> None:
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        from chatledger.eventstore import open_store
        from chatledger.runtime.langgraph import ChatledgerSaver
    except ImportError as e:
        bench.skip(f"{GROUP} (PostgreSQL)", f"langgraph-checkpoint-postgres is missing ({e})")
        return
    suffix = f"{os.getpid()}_{int(time.time())}"
    admin = psycopg.connect(bench.postgres_url, autocommit=True)
    bench.on_exit(admin.close)
    sep = "&" if "?" in bench.postgres_url else "?"

    def pair(tag: str) -> tuple[Any, Any, str, str]:
        ours_schema, lg_schema = f"chatledger_lg{tag}_{suffix}", f"langgraph_lg{tag}_{suffix}"
        store = open_store(f"{bench.postgres_url}{sep}schema={ours_schema}")
        bench.on_exit(lambda: admin.execute(f'DROP SCHEMA IF EXISTS "{ours_schema}" CASCADE'))
        bench.on_exit(store.close)
        admin.execute(f'CREATE SCHEMA "{lg_schema}"')
        bench.on_exit(lambda: admin.execute(f'DROP SCHEMA IF EXISTS "{lg_schema}" CASCADE'))
        conn = psycopg.connect(bench.postgres_url, autocommit=True, prepare_threshold=0,
                               row_factory=dict_row, options=f"-c search_path={lg_schema}")
        bench.on_exit(conn.close)
        saver = PostgresSaver(conn)
        saver.setup()
        ours = ChatledgerSaver(store)
        ours.setup()  # ?schema= names a schema that does not exist yet
        return _graph(ours), _graph(saver), ours_schema, lg_schema

    try:
        ours, theirs, _, _ = pair("t")
    except Exception as e:
        bench.skip(f"{GROUP} (PostgreSQL)", f"PostgreSQL unavailable: {type(e).__name__}: {e}")
        return
    _turns(bench, "PostgreSQL", "PostgresSaver", ours, theirs)

    def make() -> Any:
        o, t, o_schema, t_schema = pair("s")
        return (o, t, lambda: _postgres_bytes(admin, o_schema),
                lambda: _postgres_bytes(admin, t_schema), lambda: None)
    _storage(bench, "PostgreSQL", "PostgresSaver", make)
