"""``postgres``: concurrent writers and a history load, against langchain-postgres.

Both systems run on the same server, each in a scratch schema that this group creates and
drops. Every writer thread does one turn (two messages, one commit) per call, as fast as it can.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from chatledger.eventstore import EventStore, open_store
from chatledger.projections import ChatHistory
from chatledger.tools.bench._append import growth_target, session_growth
from chatledger.tools.bench._data import lc_messages, lc_turn, message_events, turn
from chatledger.tools.bench._harness import Bench, Skip, fmt, measure, progress, ratio, speedup

GROUP = "postgres"
WRITERS = (1, 4, 16)
LC_TABLE = "message_store"

Writer = Callable[[], object]


def run(bench: Bench) -> None:
    """Run the group: turns per second at 1, 4 and 16 writers, and a 1k-message load."""
    import psycopg

    suffix = f"{os.getpid()}_{int(time.time())}"
    ours_schema, lc_schema = f"chatledger_bench_{suffix}", f"langchain_bench_{suffix}"
    sep = "&" if "?" in bench.postgres_url else "?"
    url = f"{bench.postgres_url}{sep}schema={ours_schema}&pool_size={max(WRITERS) + 4}"
    try:
        store = open_store(url)
    except Exception as e:
        raise Skip(f"open_store('postgresql://...') failed: {type(e).__name__}: {e}") from e
    admin = psycopg.connect(bench.postgres_url, autocommit=True)
    bench.on_exit(admin.close)
    bench.on_exit(lambda: admin.execute(f'DROP SCHEMA IF EXISTS "{ours_schema}" CASCADE'))
    bench.on_exit(store.close)
    admin.execute(f'CREATE SCHEMA "{lc_schema}"')
    bench.on_exit(lambda: admin.execute(f'DROP SCHEMA IF EXISTS "{lc_schema}" CASCADE'))

    opened: list[Any] = []

    def lc_connect() -> Any:
        conn = psycopg.connect(bench.postgres_url, options=f"-c search_path={lc_schema}")
        opened.append(conn)
        return conn

    def close_opened() -> None:
        while opened:
            opened.pop().close()

    bench.on_exit(close_opened)

    from langchain_postgres import PostgresChatMessageHistory

    PostgresChatMessageHistory.create_tables(lc_connect(), LC_TABLE)
    close_opened()

    def ours_writer(session: str) -> Writer:
        history = ChatHistory(session, store)
        human, ai = turn(0)
        return lambda: history.add_messages([human, ai])

    def lc_writer(session: str) -> Writer:
        history = PostgresChatMessageHistory(LC_TABLE, session, sync_connection=lc_connect())
        messages = list(lc_turn(0))
        return lambda: history.add_messages(messages)

    seconds = bench.size(3.0, 1.0)
    rates: dict[tuple[str, str, int], float] = {}
    makers: dict[str, Callable[[str], Writer]] = {"chatledger": ours_writer,
                                                  "langchain": lc_writer}
    for system, make in makers.items():
        for sharing in ("own", "shared"):
            shared = str(uuid.uuid4())  # langchain-postgres takes only UUIDs as session ids
            for writers in WRITERS:
                progress(f"{system}: {writers} writer(s), {sharing} session(s)")
                samples = []
                for _ in range(bench.size(3, 1)):
                    sessions = [shared if sharing == "shared" else str(uuid.uuid4())
                                for _ in range(writers)]
                    samples.append(_throughput([make(s) for s in sessions], seconds))
                    close_opened()  # a connection per LangChain writer: never pile them up
                rate = rates[(system, sharing, writers)] = statistics.median(samples)
                bench.record("postgres.turns_per_s", system,
                             {"writers": writers, "sessions": sharing, "seconds": seconds},
                             rate, unit="turns/s", samples=len(samples))
    floor = _commit_floor(bench, lc_connect, seconds)
    _targets(bench, rates, ours_writer)
    lc_one = rates[("langchain", "own", 1)]
    bench.target(GROUP, "raw commit floor: one single-row INSERT per commit (psycopg, "
                 "autocommit, synchronous_commit=on), 1 writer",
                 chatledger=f"{floor:,.0f}/s", langchain=f"{lc_one:,.0f}/s",
                 goal="—", actual=f"3x LangChain would need {3 * lc_one:,.0f}/s",
                 ok=None)
    _processes(bench, url, lc_schema, rates)
    growth_target(bench, GROUP, "PostgreSQL", *session_growth(bench, store, "postgres"))
    _load(bench, store, lc_connect)
    # A LangChain connection left idle in a transaction (its reads open one) would hold off
    # the next group's CREATE INDEX CONCURRENTLY (PostgresSaver.setup) until the run ends.
    close_opened()


def _commit_floor(bench: Bench, lc_connect: Callable[[], Any], seconds: float) -> float:
    """Commits per second of the cheapest durable write: one tiny row, one round trip."""
    conn = lc_connect()
    conn.autocommit = True
    conn.execute("CREATE TABLE IF NOT EXISTS commit_floor (id bigserial PRIMARY KEY, t text)")

    def write() -> None:
        conn.execute("INSERT INTO commit_floor (t) VALUES (%s)", ("x",))
    rate = statistics.median(_throughput([write], seconds) for _ in range(bench.size(3, 1)))
    bench.record("postgres.commit_floor", "psycopg", {"seconds": seconds}, rate,
                 unit="commits/s")
    return rate


def _throughput(writers: list[Writer], seconds: float) -> float:
    """Turns per second with one thread per writer, each writing for about ``seconds``."""
    stop = threading.Event()
    start = threading.Barrier(len(writers) + 1)
    counts = [0] * len(writers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        write = writers[i]
        write()  # warm the connection before the clock starts
        start.wait()
        try:
            while not stop.is_set():
                write()
                counts[i] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(writers))]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def _targets(bench: Bench, rates: dict[tuple[str, str, int], float],
             ours_writer: Callable[[str], Writer]) -> None:
    one, lc_one = rates[("chatledger", "own", 1)], rates[("langchain", "own", 1)]
    profile = ("postgres_turn", ours_writer(f"w-{uuid.uuid4()}"))
    bench.target(GROUP, "turns/s, 1 writer", chatledger=f"{one:,.0f}/s",
                 langchain=f"{lc_one:,.0f}/s", goal="≥ 3x faster per turn",
                 actual=speedup(1 / lc_one, 1 / one), ok=one / lc_one >= 3, profile=profile)
    for sharing in ("own", "shared"):
        top = rates[("chatledger", sharing, max(WRITERS))]
        lc_top = rates[("langchain", sharing, max(WRITERS))]
        scale = top / rates[("chatledger", sharing, 1)]
        label = "own session each" if sharing == "own" else "one shared session"
        bench.target(GROUP, f"turns/s, 16 writers vs 1 ({label})",
                     chatledger=f"{rates[('chatledger', sharing, 1)]:,.0f} → {top:,.0f}/s",
                     langchain=f"{rates[('langchain', sharing, 1)]:,.0f} → {lc_top:,.0f}/s",
                     goal="≥ 2.5x at 16" if sharing == "own" else "—", actual=ratio(scale),
                     ok=scale >= 2.5 if sharing == "own" else None, profile=profile)


def _process_writer(system: str, url: str, lc_schema: str, seconds: float, ready: Any,
                    counts: Any, slot: int) -> None:
    """One writer process (an app server): one own session, turns for ``seconds``."""
    if system == "chatledger":
        store = open_store(url)
        history = ChatHistory(str(uuid.uuid4()), store)
        human, ai = turn(0)
        write: Writer = lambda: history.add_messages([human, ai])  # noqa: E731
    else:
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        base = url.split("?", 1)[0]
        conn = psycopg.connect(base, options=f"-c search_path={lc_schema}")
        lc = PostgresChatMessageHistory(LC_TABLE, str(uuid.uuid4()), sync_connection=conn)
        messages = list(lc_turn(0))
        write = lambda: lc.add_messages(messages)  # noqa: E731
    write()
    ready.wait()
    n, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        write()
        n += 1
    counts[slot] = n


def _processes(bench: Bench, url: str, lc_schema: str,
               rates: dict[tuple[str, str, int], float]) -> None:
    """16 writers as 16 processes (app servers), each with its own session: no shared GIL."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    writers, seconds = max(WRITERS), bench.size(3.0, 1.0)
    proc_rates = {}
    for system in ("chatledger", "langchain"):
        progress(f"{system}: {writers} writer processes, own sessions")
        ready = ctx.Barrier(writers + 1)
        counts = ctx.Array("q", writers)
        procs = [ctx.Process(target=_process_writer,
                             args=(system, url, lc_schema, seconds, ready, counts, i))
                 for i in range(writers)]
        for p in procs:
            p.start()
        ready.wait(timeout=120)
        for p in procs:
            p.join(timeout=seconds + 60)
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError(f"a {system} writer process failed")
        # every process writes for exactly ``seconds`` from the common start
        rate = proc_rates[system] = sum(counts) / seconds
        bench.record("postgres.turns_per_s", system,
                     {"writers": writers, "sessions": "own", "processes": True,
                      "seconds": seconds}, rate, unit="turns/s")
    ours, theirs = proc_rates["chatledger"], proc_rates["langchain"]
    one, lc_one = rates[("chatledger", "own", 1)], rates[("langchain", "own", 1)]
    bench.target(GROUP, f"turns/s, {writers} writer processes vs 1 writer (own session each)",
                 chatledger=f"{one:,.0f} → {ours:,.0f}/s",
                 langchain=f"{lc_one:,.0f} → {theirs:,.0f}/s", goal="—",
                 actual=ratio(ours / one), ok=None)


def _load(bench: Bench, store: EventStore, lc_connect: Callable[[], Any]) -> None:
    """Load a 1,000-message session with each system."""
    from langchain_postgres import PostgresChatMessageHistory

    ours_key, lc_key = "load-1000", str(uuid.uuid4())
    store.append(ours_key, message_events(1_000))
    lc = PostgresChatMessageHistory(LC_TABLE, lc_key, sync_connection=lc_connect())
    lc.add_messages(lc_messages(1_000))

    def load() -> object:
        return store.load_history(ours_key)[1]  # uncached: a session's first load

    if len(load()) != 1_000 or len(lc.messages) != 1_000:  # type: ignore[arg-type]
        raise RuntimeError("the 1,000-message sessions do not hold 1,000 messages")
    repeats = bench.size(7, 3)
    ours = bench.record("postgres.load", "chatledger", {"messages": 1_000},
                        measure(load, unit="ms", repeats=repeats))
    theirs = bench.record("postgres.load", "langchain", {"messages": 1_000},
                          measure(lambda: lc.messages, unit="ms", repeats=repeats))
    bench.target(GROUP, "load a 1,000-message session", chatledger=fmt(ours.value, "ms"),
                 langchain=fmt(theirs.value, "ms"), goal="—",
                 actual=speedup(theirs.value, ours.value), ok=None)
