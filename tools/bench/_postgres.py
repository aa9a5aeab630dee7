"""``postgres``: one writer, concurrent writers and a history load, against langchain-postgres.

Both systems run on the same server, each in a scratch schema that this group creates and
drops. A turn is two messages in one commit. One writer is timed call by call, interleaved
with langchain-postgres and the physical floor (one autocommit INSERT of two rows), at session
sizes 10 and 1,000; concurrent writers (threads, then processes) write as fast as they can.
Beside each figure: the client's CPU per turn and the CPU of every PostgreSQL process on this
machine per turn (clients and server share the cores, so the figures explain each other).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from chatledger.eventstore import EventStore, MessageAppended, open_store
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
    one = _one_writer(bench, store, lc_connect)
    rates: dict[tuple[str, str, int], float] = {}
    cpu: dict[tuple[str, str, int], Cpu] = {}
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
                middle = _middle(samples)
                rate, cpu[(system, sharing, writers)] = middle
                rates[(system, sharing, writers)] = rate
                bench.record("postgres.turns_per_s", system,
                             {"writers": writers, "sessions": sharing, "seconds": seconds,
                              "client_cpu_us": round(middle[1].client, 1),
                              "server_cpu_us": _round(middle[1].server)},
                             rate, unit="turns/s", samples=len(samples))
    _one_writer_targets(bench, one, ours_writer)
    _tailed(bench, store)
    _targets(bench, rates, cpu, ours_writer)
    _processes(bench, url, lc_schema, rates)
    growth_target(bench, GROUP, "PostgreSQL", *session_growth(bench, store, "postgres"))
    _load(bench, store, lc_connect)
    # A LangChain connection left idle in a transaction (its reads open one) would hold off
    # the next group's CREATE INDEX CONCURRENTLY (PostgresSaver.setup) until the run ends.
    close_opened()


class Cpu(NamedTuple):
    """CPU per turn in µs: this process's threads, and every PostgreSQL process on the machine
    (None when no PostgreSQL process is visible here, e.g. a remote server)."""

    client: float
    server: float | None


def _server_ticks() -> dict[int, int] | None:
    """CPU clock ticks used so far by each PostgreSQL process of this machine (from /proc);
    None when there is none (a remote server)."""
    ticks: dict[int, int] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        if stat[stat.index("(") + 1:stat.rindex(")")] != "postgres":
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks or None


class _Meter:
    """Wall time, client CPU and server CPU over a span of turns."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.client = time.process_time()
        self.server = _server_ticks()

    def per_turn(self, turns: int) -> tuple[float, Cpu]:
        """Seconds of wall time per turn, and the CPU per turn in µs."""
        server = _server_ticks()
        wall = (time.perf_counter() - self.wall) / turns
        client = (time.process_time() - self.client) / turns * 1e6
        busy = None
        if server is not None and self.server is not None:  # processes that ended are lost
            ticks = sum(t - self.server.get(pid, 0) for pid, t in server.items())
            busy = ticks / os.sysconf("SC_CLK_TCK") / turns * 1e6
        return wall, Cpu(client, busy)


def _middle(rounds: list[tuple[float, Cpu]]) -> tuple[float, Cpu]:
    """The median round by its first figure (wall time per turn, or turns per second), with
    that round's CPU."""
    return sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cpu_text(cpu: Cpu) -> str:
    server = "n/a" if cpu.server is None else f"{cpu.server:,.0f}"
    return f"CPU/turn: client {cpu.client:,.0f} µs, server {server} µs"


class OneWriter(NamedTuple):
    """One writer's cost per turn: the median round's wall time (µs) and its CPU."""

    wall: float
    cpu: Cpu


def _one_writer(bench: Bench, store: EventStore,
                lc_connect: Callable[[], Any]) -> dict[tuple[str, int], OneWriter]:
    """One writer, one turn per call, at session sizes 10 and 1,000 and to a new session (size
    0), against langchain-postgres and the floor (one autocommit INSERT of two rows), rounds
    interleaved.

    Each call appends to the next of a set of sessions of that size, so every session stays
    near its size.
    """
    from langchain_postgres import PostgresChatMessageHistory

    progress("one writer: sessions of 10 and 1,000 messages, and the floor")
    count = bench.size(20, 4)
    lc_conn = lc_connect()
    ops: dict[tuple[str, int], Callable[[int], object]] = {}
    human, ai = turn(0)
    events = [MessageAppended(message=human), MessageAppended(message=ai)]
    lc_pair = list(lc_turn(0))
    for size in (10, 1_000):
        keys = [f"one-{size}-{i}" for i in range(count)]
        lcs = [PostgresChatMessageHistory(LC_TABLE, str(uuid.uuid4()), sync_connection=lc_conn)
               for _ in range(count)]
        for key, lc in zip(keys, lcs, strict=True):
            store.append(key, message_events(size))
            lc.add_messages(lc_messages(size))
        ops[("chatledger", size)] = lambda i, keys=keys: store.append(keys[i % len(keys)],
                                                                        events)
        ops[("langchain", size)] = lambda i, lcs=lcs: lcs[i % len(lcs)].add_messages(lc_pair)
    # size 0: each call starts a new session (the first turn of a conversation)
    ops[("chatledger", 0)] = lambda i: store.append(f"new-{uuid.uuid4()}", events)
    ops[("langchain", 0)] = lambda i: PostgresChatMessageHistory(
        LC_TABLE, str(uuid.uuid4()), sync_connection=lc_conn).add_messages(lc_pair)
    floor = lc_connect()
    floor.autocommit = True
    floor.execute("CREATE TABLE IF NOT EXISTS commit_floor "
                  "(id bigserial PRIMARY KEY, session_id text, message jsonb)")
    two_rows = ("INSERT INTO commit_floor (session_id, message) VALUES (%s, %s), (%s, %s)",
                ("s", '{"type": "human"}', "s", '{"type": "ai"}'))
    ops[("floor", 0)] = lambda i: floor.execute(*two_rows)
    ops[("bound", 10)] = _three_writes(bench, floor, count)
    calls = bench.size(200, 40)
    seen: dict[tuple[str, int], list[tuple[float, Cpu]]] = {name: [] for name in ops}
    for op in ops.values():
        for i in range(-5, 0):
            op(i)  # warm: connections, prepared statements, caches
    for _ in range(bench.size(7, 3)):
        for name, op in ops.items():
            meter = _Meter()
            for i in range(calls):
                op(i)
            seen[name].append(meter.per_turn(calls))
    out = {}
    for name, rounds in seen.items():
        wall, cpu = _middle(rounds)
        out[name] = OneWriter(wall * 1e6, cpu)
        system, size = name
        bench.record("postgres.one_writer_turn",
                     "psycopg" if system in ("floor", "bound") else system,
                     {"session_messages": size, "calls": calls,
                      **({"what": "the three writes by hand"} if system == "bound" else {}),
                      "client_cpu_us": round(cpu.client, 1), "server_cpu_us": _round(cpu.server)},
                     wall * 1e6, unit="us", samples=len(rounds))
    return out


def _three_writes(bench: Bench, conn: Any, count: int) -> Callable[[int], object]:
    """A lower bound of a turn under chatledger's data model: the writes DESIGN.md requires in
    the append's transaction (two events with their three unique indexes, two history rows,
    the stream row's update), hand-written as one round trip of one simple-protocol string,
    with the digests made up and no PL/pgSQL, into a ledger of its own."""
    import psycopg

    schema = f"chatledger_bound_{os.getpid()}_{int(time.time())}"
    sep = "&" if "?" in bench.postgres_url else "?"
    with open_store(f"{bench.postgres_url}{sep}schema={schema}", create=True):
        pass
    bench.on_exit(lambda: _drop_schema(bench.postgres_url, schema))  # conn is closed by then
    messages = turn(0)
    human, ai = (msgspec.json.encode(m).decode() for m in messages)
    human_event, ai_event = (msgspec.json.encode(MessageAppended(message=m)).decode()
                             for m in messages)
    digest = "0" * 64
    sql = (f'BEGIN; INSERT INTO "{schema}".events (stream_id, version, position, event_id, '
           "type, recorded_at, data, meta, payload_digest, digest, chain, salt) VALUES "
           "(%(s)s, %(v1)s, %(p1)s, %(e1)s, 'message_appended', %(t)s, %(d1)s, '{}', %(d)s, "
           "%(d)s, %(d)s, %(d)s), (%(s)s, %(v2)s, %(p2)s, %(e2)s, 'message_appended', %(t)s, "
           f'%(d2)s, \'{{}}\', %(d)s, %(d)s, %(d)s, %(d)s); INSERT INTO "{schema}".history '
           "(stream_id, version, idx, message) VALUES (%(s)s, %(v1)s, 0, %(m1)s), "
           f'(%(s)s, %(v2)s, 0, %(m2)s); UPDATE "{schema}".streams SET version = %(v2)s, '
           "chain = %(d)s, updated_at = %(t)s, message_count = message_count + 2 "
           "WHERE stream_id = %(s)s; COMMIT")
    sessions = [f"bound-{i}" for i in range(count)]
    for sid in sessions:
        conn.execute(f'INSERT INTO "{schema}".streams (stream_id, key, version, chain, '
                     "created_at, updated_at) VALUES (%s, '{}', 0, %s, '', '')", (sid, digest))
    versions = dict.fromkeys(sessions, 0)
    positions = iter(range(1, 1 << 62, 2))

    def op(i: int) -> object:
        sid = sessions[i % count]
        v, p = versions[sid], next(positions)
        versions[sid] = v + 2
        return psycopg.ClientCursor(conn).execute(sql, {
            "s": sid, "v1": v + 1, "v2": v + 2, "p1": p, "p2": p + 1, "e1": str(uuid.uuid4()),
            "e2": str(uuid.uuid4()), "t": "2026-01-01T00:00:00.000000Z", "m1": human,
            "m2": ai, "d1": human_event, "d2": ai_event, "d": digest}, prepare=False)
    return op


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _one_writer_targets(bench: Bench, one: dict[tuple[str, int], OneWriter],
                        ours_writer: Callable[[str], Writer]) -> None:
    profile = ("postgres_turn", ours_writer(f"w-{uuid.uuid4()}"))
    floor = one[("floor", 0)]
    for size in (10, 1_000):
        ours, theirs = one[("chatledger", size)], one[("langchain", size)]
        bench.target(GROUP, f"one turn, 1 writer, session of {size:,} messages",
                     chatledger=f"{fmt(ours.wall, 'us')} ({_cpu_text(ours.cpu)})",
                     langchain=f"{fmt(theirs.wall, 'us')} ({_cpu_text(theirs.cpu)})",
                     goal="≥ 1.3x faster", actual=speedup(theirs.wall, ours.wall),
                     ok=theirs.wall / ours.wall >= 1.3, profile=profile)
    ours, theirs = one[("chatledger", 0)], one[("langchain", 0)]
    bench.target(GROUP, "first turn of a new session, 1 writer",
                 chatledger=f"{fmt(ours.wall, 'us')} ({_cpu_text(ours.cpu)})",
                 langchain=f"{fmt(theirs.wall, 'us')} ({_cpu_text(theirs.cpu)})",
                 goal="—", actual=speedup(theirs.wall, ours.wall), ok=None)
    ours = one[("chatledger", 10)]
    bench.target(GROUP, "one turn, 1 writer, against the floor: one autocommit INSERT of two "
                 "rows (psycopg, synchronous_commit=on)",
                 chatledger=f"{fmt(ours.wall, 'us')}",
                 langchain=f"floor {fmt(floor.wall, 'us')} ({_cpu_text(floor.cpu)})",
                 goal="≤ 1.3x the floor", actual=ratio(ours.wall / floor.wall),
                 ok=ours.wall / floor.wall <= 1.3, profile=profile)
    bound = one[("bound", 10)]
    bench.target(GROUP, "lower bound of this data model: the three writes of a turn by hand, "
                 "one round trip, no hashing (vs the floor)",
                 chatledger=f"{fmt(bound.wall, 'us')} ({_cpu_text(bound.cpu)}); chatledger "
                 f"{fmt(ours.wall, 'us')}",
                 langchain=f"floor {fmt(floor.wall, 'us')}", goal="—",
                 actual=ratio(bound.wall / floor.wall), ok=None)


def _tailed(bench: Bench, store: EventStore) -> None:
    """One writer at a session of 10 messages while a tail listens (its store then notifies
    after each COMMIT), rounds alternating with no tail. The tail runs in a thread of this
    process and reads every event it is woken for: its work shares the two cores too."""
    progress("one writer while a tail listens")
    keys = [f"tail-{i}" for i in range(bench.size(20, 4))]
    for key in keys:
        store.append(key, message_events(10))
    human, ai = turn(0)
    events = [MessageAppended(message=human), MessageAppended(message=ai)]
    calls = bench.size(200, 40)
    rounds: dict[str, list[tuple[float, Cpu]]] = {"tail": [], "none": []}

    def follow() -> None:
        for _ in store.subscribe(after_position=store.last_position(), timeout=0.5):
            pass

    for _ in range(bench.size(5, 2)):
        for mode in rounds:
            tail = None
            if mode == "tail":
                tail = threading.Thread(target=follow, daemon=True)
                tail.start()
                deadline = time.monotonic() + 5
                while not getattr(store, "_tails", False):  # until an append finds the tail
                    if time.monotonic() > deadline:
                        raise RuntimeError("the tail never registered")
                    store.append(keys[0], events)
            meter = _Meter()
            for i in range(calls):
                store.append(keys[i % len(keys)], events)
            rounds[mode].append(meter.per_turn(calls))
            if tail is not None:
                tail.join(10)
    seen = {}
    for mode, measured in rounds.items():
        wall, cpu = _middle(measured)
        seen[mode] = OneWriter(wall * 1e6, cpu)
        bench.record("postgres.one_writer_turn_tail", "chatledger",
                     {"session_messages": 10, "tail": mode == "tail", "calls": calls,
                      "client_cpu_us": round(cpu.client, 1), "server_cpu_us": _round(cpu.server)},
                     wall * 1e6, unit="us", samples=len(measured))
    with_tail, without = seen["tail"], seen["none"]
    bench.target(GROUP, "one turn, 1 writer, session of 10, while a tail in this process "
                        "reads each event (vs no tail)",
                 chatledger=f"{fmt(with_tail.wall, 'us')} ({_cpu_text(with_tail.cpu)}); "
                            f"no tail {fmt(without.wall, 'us')}",
                 goal="—", actual=f"{(with_tail.wall / without.wall - 1) * 100:+.1f}%", ok=None)


def _throughput(writers: list[Writer], seconds: float) -> tuple[float, Cpu]:
    """Turns per second with one thread per writer, each writing for about ``seconds``, and
    the CPU per turn."""
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
    meter = _Meter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall, cpu = meter.per_turn(max(sum(counts), 1))
    return 1 / wall, cpu


def _targets(bench: Bench, rates: dict[tuple[str, str, int], float],
             cpu: dict[tuple[str, str, int], Cpu],
             ours_writer: Callable[[str], Writer]) -> None:
    top = max(WRITERS)
    profile = ("postgres_turn", ours_writer(f"w-{uuid.uuid4()}"))
    ours, theirs = rates[("chatledger", "own", top)], rates[("langchain", "own", top)]
    bench.target(GROUP, f"turns/s, {top} writer threads (own session each)",
                 chatledger=f"{ours:,.0f}/s ({_cpu_text(cpu[('chatledger', 'own', top)])})",
                 langchain=f"{theirs:,.0f}/s ({_cpu_text(cpu[('langchain', 'own', top)])})",
                 goal="≥ 1.1x langchain-postgres", actual=ratio(ours / theirs),
                 ok=ours / theirs >= 1.1, profile=profile)
    for sharing in ("own", "shared"):
        top_rate = rates[("chatledger", sharing, top)]
        lc_top = rates[("langchain", sharing, top)]
        label = "own session each" if sharing == "own" else "one shared session"
        bench.target(GROUP, f"turns/s, 1 → {top} writer threads ({label})",
                     chatledger=f"{rates[('chatledger', sharing, 1)]:,.0f} → {top_rate:,.0f}/s",
                     langchain=f"{rates[('langchain', sharing, 1)]:,.0f} → {lc_top:,.0f}/s",
                     goal="—", actual=ratio(top_rate / rates[("chatledger", sharing, 1)]),
                     ok=None)


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
