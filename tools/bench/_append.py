"""``append``: writing one turn and loading sessions, against ``SQLChatMessageHistory``.

LangChain's history object is built once and reused for every call, so its (costly)
construction never counts against it here; ``history`` measures construction on its own.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatledger.eventstore import EventStore, Message, MessageAppended, open_store
from chatledger.tools.bench._data import (
    Sessions,
    lc_history,
    lc_log,
    lc_turn,
    log,
    message_events,
    sessions,
    sqlite_url,
    turn,
)
from chatledger.tools.bench._harness import (
    Bench,
    Result,
    fmt,
    measure_each_together,
    measure_together,
    ratio,
    speedup,
)

GROUP = "append"


def run(bench: Bench) -> None:
    """Run the group: one turn per call, session loads, load time against log size."""
    _turns(bench)
    for size in sessions(bench).sizes:
        ours, theirs = session_loads(bench, size)
        goal, ok = ("≤ 10 ms", ours.value <= 10) if size == 10_000 else ("—", None)
        bench.target(GROUP, f"load a {size:,}-message session (log also holds 1,000 others)",
                     chatledger=fmt(ours.value, "ms"), langchain=fmt(theirs.value, "ms"),
                     goal=goal, actual=fmt(ours.value, "ms") if ok is not None
                     else speedup(theirs.value, ours.value), ok=ok,
                     profile=(f"load_{size}", _loader(bench, size)))
    _flat(bench)


def session_growth(bench: Bench, store: EventStore, prefix: str) -> tuple[float, float]:
    """One turn appended to sessions of 10 and of 1,000 messages, calls interleaved.

    Each call appends to its own session, so every session stays at its size.
    """
    count = bench.size(60, 15)
    ops: dict[str, tuple[Callable[[int], object], int]] = {}
    for size in (10, 1_000):
        keys = [f"{prefix}-{size}-{i}" for i in range(-2, count)]
        for key in keys:
            store.append(key, message_events(size))
        ops[str(size)] = (_turn_into(store, keys), count)
    t = measure_each_together(ops, unit="us")
    for size in (10, 1_000):
        bench.record("append.turn_by_session_size", "chatledger",
                     {"backend": prefix, "session_messages": size}, t[str(size)])
    return t["10"].value, t["1000"].value


def _turn_into(store: EventStore, keys: list[str]) -> Callable[[int], object]:
    human, ai = _TURNS[0]
    events = [MessageAppended(message=human), MessageAppended(message=ai)]
    return lambda i: store.append(keys[i + 2], events)


def growth_target(bench: Bench, group: str, backend: str, small: float, large: float) -> None:
    bench.target(group, f"one turn appended to a session of 10 → 1,000 messages ({backend})",
                 chatledger=f"{fmt(small, 'us')} → {fmt(large, 'us')}", goal="≤ 1.15x (flat)",
                 actual=ratio(large / small), ok=large / small <= 1.15)


def _turns(bench: Bench) -> None:
    """One turn per call with each system and the raw commit floors, rounds interleaved."""
    folder = bench.tmp / "turns"
    folder.mkdir()
    ops = {f"chatledger-{d}": _append_op(bench, folder / f"{d}.db", d) for d in ("full", "fast")}
    ops["langchain"] = _lc_append_op(bench, folder / "langchain.db")
    for sync in ("FULL", "NORMAL"):
        ops[f"floor-{sync}"] = _commit_op(bench, folder / f"floor-{sync}.db", sync)
    t = measure_together(ops, repeats=bench.size(9, 3), min_time=0.1)
    growth = open_store(sqlite_url(folder / "growth.db"))
    bench.on_exit(growth.close)
    growth_target(bench, GROUP, "SQLite, durability=full", *session_growth(bench, growth, "sqlite"))
    for d in ("full", "fast"):
        bench.record("append.turn", "chatledger", {"durability": d, "messages": 2},
                     t[f"chatledger-{d}"])
    bench.record("append.turn", "langchain",
                 {"durability": "sqlite default (rollback journal, synchronous=FULL)",
                  "messages": 2}, t["langchain"])
    for sync in ("FULL", "NORMAL"):
        bench.record("append.commit_floor", "sqlite3",
                     {"journal_mode": "wal", "synchronous": sync.lower(), "rows": 1},
                     t[f"floor-{sync}"])

    full, fast, lc = t["chatledger-full"].value, t["chatledger-fast"].value, t["langchain"].value
    floor, floor_fast = t["floor-FULL"].value, t["floor-NORMAL"].value
    profile = ("append_turn_full", ops["chatledger-full"])
    bench.target(GROUP, "one turn (2 messages), durability=full", chatledger=fmt(full, "us"),
                 langchain=fmt(lc, "us"), goal="≤ 300 µs", actual=fmt(full, "us"),
                 ok=full <= 300, profile=profile)
    bench.target(GROUP, "one turn, durability=full, vs LangChain", chatledger=fmt(full, "us"),
                 langchain=fmt(lc, "us"), goal="≥ 4x faster", actual=speedup(lc, full),
                 ok=lc / full >= 4, profile=profile)
    bench.target(GROUP, f"one turn vs raw sqlite3 commit floor (WAL, FULL: {fmt(floor, 'us')})",
                 chatledger=fmt(full, "us"), goal="≤ 1.5x floor", actual=ratio(full / floor),
                 ok=full / floor <= 1.5, profile=profile)
    bench.target(GROUP, "one turn, durability=fast", chatledger=fmt(fast, "us"),
                 goal="≤ 60 µs", actual=fmt(fast, "us"), ok=fast <= 60,
                 profile=("append_turn_fast", ops["chatledger-fast"]))
    bench.target(GROUP, f"one turn, fast, vs raw sqlite3 commit floor (WAL, NORMAL: "
                 f"{fmt(floor_fast, 'us')})", chatledger=fmt(fast, "us"), goal="—",
                 actual=ratio(fast / floor_fast), ok=None)


# The messages exist before the clock starts, as they do when an app saves a turn.
_TURNS = [turn(i) for i in range(1_000)]


def _append_op(bench: Bench, path: Path, durability: str) -> Callable[[], object]:
    store = open_store(sqlite_url(path), durability=durability)
    bench.on_exit(store.close)
    counter = itertools.count()

    def append_turn() -> object:
        human, ai = _TURNS[next(counter) % len(_TURNS)]
        return store.append("turns", [MessageAppended(message=human),
                                      MessageAppended(message=ai)])
    return append_turn


def _lc_append_op(bench: Bench, path: Path) -> Callable[[], object]:
    history = lc_history("turns", sqlite_url(path))
    bench.on_exit(history.engine.dispose)
    turns = [list(lc_turn(i)) for i in range(1_000)]
    counter = itertools.count()
    return lambda: history.add_messages(turns[next(counter) % len(turns)])


def _commit_op(bench: Bench, path: Path, synchronous: str) -> Callable[[], object]:
    """One small row per commit with plain sqlite3: what any durable append must pay."""
    conn = sqlite3.connect(path, isolation_level=None)
    bench.on_exit(conn.close)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    body = "x" * 64
    return lambda: conn.execute("INSERT INTO floor (body) VALUES (?)", (body,))


def _load_op(store: EventStore, key: str) -> Callable[[], list[Message]]:
    # From the projection tables, as the first load of a session in a process does: the
    # history cache serves the later ones (and would measure a cache hit here).
    return lambda: store.load_history(key)[1]


def _lc_load_op(history: Any) -> Callable[[], list[Any]]:
    return lambda: list(history.messages)


def _loader(bench: Bench, size: int) -> Callable[[], list[Message]]:
    return _load_op(sessions(bench).store, Sessions.key(size))


def session_loads(bench: Bench, size: int) -> tuple[Result, Result]:
    """Load the ``size``-message session with each system (measured once per run)."""
    return bench.cached(("load", size), lambda: _session_loads(bench, size))


def _session_loads(bench: Bench, size: int) -> tuple[Result, Result]:
    data = sessions(bench)
    key = Sessions.key(size)
    load = _loader(bench, size)
    history = lc_history(key, data.lc_url)
    bench.on_exit(history.engine.dispose)
    if len(load()) != size or len(history.messages) != size:
        raise RuntimeError(f"session {key} does not hold {size} messages in both systems")
    t = measure_together({"ours": load, "theirs": _lc_load_op(history)}, unit="ms",
                         repeats=bench.size(7, 3), warmup=2)
    params = {"messages": size, "other_sessions": data.others}
    return (bench.record("append.load", "chatledger", params, t["ours"]),
            bench.record("append.load", "langchain", params, t["theirs"]))


def _flat(bench: Bench) -> None:
    """A 100-message session load in a small and a big log: the cost must not grow."""
    sizes = (10_000, bench.size(1_000_000, 100_000))
    ours: dict[str, Callable[[], object]] = {}
    theirs: dict[str, Callable[[], object]] = {}
    for events in sizes:
        lg = log(bench, events)
        store = open_store(lg.url)
        bench.on_exit(store.close)
        load = _load_op(store, lg.probe)
        if len(load()) != lg.session_size:
            raise RuntimeError(f"session {lg.probe} of log-{events} is not complete")
        ours[str(events)] = load
        lc = lc_log(bench, events)
        history = lc_history(lc.probe, lc.url)
        bench.on_exit(history.engine.dispose)
        theirs[str(events)] = _lc_load_op(history)
    t = measure_together(ours, unit="ms", repeats=bench.size(7, 3))
    lc_t = measure_together(theirs, unit="ms", repeats=bench.size(5, 3), warmup=2)
    for events in sizes:
        bench.record("append.load_in_log", "chatledger", {"messages": 100, "log_events": events},
                     t[str(events)])
        bench.record("append.load_in_log", "langchain", {"messages": 100, "log_rows": events},
                     lc_t[str(events)])
    small, big = (str(n) for n in sizes)
    growth = t[big].value / t[small].value
    bench.target(GROUP, f"100-message load, log of {sizes[0]:,} → {sizes[1]:,} events",
                 chatledger=f"{fmt(t[small].value, 'ms')} → {fmt(t[big].value, 'ms')}",
                 langchain=f"{fmt(lc_t[small].value, 'ms')} → {fmt(lc_t[big].value, 'ms')}",
                 goal="≤ 1.3x (flat)", actual=ratio(growth), ok=growth <= 1.3,
                 profile=("load_in_big_log", ours[big]))
