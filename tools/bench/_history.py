"""``history``: current and as-of loads, construction from a URL, rebuilding the projection."""

from __future__ import annotations

import random
import statistics

from chatledger.eventstore import SessionKey, open_store
from chatledger.projections import ChatHistory, shared_store
from chatledger.tools.bench._append import session_loads
from chatledger.tools.bench._data import Sessions, lc_history, log, sessions
from chatledger.tools.bench._harness import (
    Bench,
    fmt,
    measure,
    measure_together,
    progress,
    ratio,
    speedup,
)

GROUP = "history"


def run(bench: Bench) -> None:
    """Run the group: current loads, as-of loads, construction, rebuild."""
    data = sessions(bench)
    for size, limit in ((1_000, 1.0), (10_000, 10.0)):
        ours, theirs = session_loads(bench, size)

        def load(size: int = size) -> object:
            return data.store.load_history(Sessions.key(size))[1]  # uncached, as measured

        bench.target(GROUP, f"current load, {size:,} messages", chatledger=fmt(ours.value, "ms"),
                     langchain=fmt(theirs.value, "ms"), goal=f"≤ {limit:g} ms",
                     actual=fmt(ours.value, "ms"), ok=ours.value <= limit,
                     profile=(f"load_{size}", load))
        bench.target(GROUP, f"current load, {size:,} messages, vs LangChain",
                     chatledger=fmt(ours.value, "ms"), langchain=fmt(theirs.value, "ms"),
                     goal="≥ 30x faster", actual=speedup(theirs.value, ours.value),
                     ok=theirs.value / ours.value >= 30, profile=(f"load_{size}", load))
    _construction(bench)
    _rebuild(bench)
    _as_of(bench)  # last: its forks add sessions to the shared data set


def _as_of(bench: Bench) -> None:
    """``as_of(version=v)`` against a current load of the same ``v`` messages (a fork at ``v``)."""
    data = sessions(bench)
    history = ChatHistory(Sessions.key(10_000), data.store)
    head = history.version
    versions = sorted(random.Random(7).sample(range(1, head + 1), bench.size(5, 3)))
    ratios = []
    worst_op = None
    for v in versions:
        fork = history.fork(f"asof-fork-{v}", at_version=v)
        if len(history.as_of(version=v)) != v or len(fork.messages) != v:
            raise RuntimeError(f"as_of({v}) or its fork does not hold {v} messages")

        def as_of(v: int = v) -> object:
            return history.as_of(version=v)

        def current(key: SessionKey = fork.key) -> object:
            return data.store.load_history(key)[1]  # uncached, like as_of

        t = measure_together({"as_of": as_of, "current": current}, unit="ms",
                             repeats=bench.size(7, 3))
        past = bench.record("history.as_of", "chatledger", {"version": v, "session_version": head},
                            t["as_of"])
        now = bench.record("history.load_same_size", "chatledger", {"messages": v},
                           t["current"])
        ratios.append(past.value / now.value)
        if past.value / now.value >= max(ratios):
            worst_op = as_of
    assert worst_op is not None
    bench.target(GROUP, f"as_of(version=v) at {len(versions)} random versions of a "
                 f"{head:,}-event session vs a current load of v messages",
                 goal="≤ 2x current load", actual=f"worst {ratio(max(ratios))} "
                 f"(median {ratio(statistics.median(ratios))})", ok=max(ratios) <= 2,
                 profile=("as_of", worst_op))


def _construction(bench: Bench) -> None:
    """A history object per request, from a URL: ours after the first, LangChain's each time."""
    data = sessions(bench)
    key = Sessions.key(10)
    bench.on_exit(lambda: shared_store(data.url).close())
    ChatHistory(key, data.url)  # the first opens the store; the rest reuse it
    ours = bench.record("history.construct", "chatledger", {"from": "url"},
                        measure(lambda: ChatHistory(key, data.url), max_number=20_000))
    theirs = bench.record("history.construct", "langchain", {"from": "url"},
                          measure(lambda: lc_history(key, data.lc_url), repeats=bench.size(7, 3)))
    bench.target(GROUP, "construct a history from a URL (after the first)",
                 chatledger=fmt(ours.value, "us"), langchain=fmt(theirs.value, "us"), goal="—",
                 actual=speedup(theirs.value, ours.value), ok=None)


def _rebuild(bench: Bench) -> None:
    """Drop and replay the history projection of a big log."""
    events = bench.size(1_000_000, 100_000)
    lg = log(bench, events)
    store = open_store(lg.url)
    bench.on_exit(store.close)
    progress(f"rebuilding the projection of {events:,} events")
    timing = measure(store.rebuild, unit="s", repeats=bench.size(3, 2), min_time=0, warmup=1)
    bench.record("history.rebuild", "chatledger", {"events": events}, timing)
    rate = events / timing.value
    bench.record("history.rebuild_rate", "chatledger", {"events": events}, rate,
                 unit="events/s", samples=timing.samples)
    bench.target(GROUP, f"store.rebuild() of {events:,} events",
                 chatledger=f"{fmt(timing.value, 's')}", goal="≥ 200,000 events/s",
                 actual=f"{rate:,.0f} events/s", ok=rate >= 200_000,
                 profile=("rebuild", store.rebuild))
