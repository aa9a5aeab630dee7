"""``audit``: verify of a whole log, log heads, verify against a head, the cost of salting."""

from __future__ import annotations

import time

from chatledger.eventstore import HumanMessage, MessageAppended, _codec, open_store
from chatledger.tools.bench._data import log
from chatledger.tools.bench._harness import Bench, fmt, measure, progress

GROUP = "audit"


def run(bench: Bench) -> None:
    """Run the group on a log of 1M events (20,000 with --quick)."""
    events = bench.size(1_000_000, 20_000)
    data = log(bench, events)
    store = open_store(data.url)
    bench.on_exit(store.close)
    _verify(bench, store, events)
    _heads(bench, store, events)
    _salting(bench)


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def _verify(bench: Bench, store: object, events: int) -> None:
    progress(f"verify() of {events:,} events")
    report = None

    def once() -> None:
        nonlocal report
        report = store.verify()  # type: ignore[attr-defined]
    seconds = _timed(once)
    assert report is not None and report.ok, "the benchmark log does not verify"
    rate = events / seconds
    bench.record("audit.verify", "chatledger", {"events": events}, rate, unit="events/s")
    bench.target(GROUP, f"verify() of {events:,} events (every row, catalog, projections, "
                 "quick_check)", goal="≥ 200,000 events/s", actual=f"{fmt(rate)} events/s",
                 ok=rate >= 200_000, profile=("audit_verify", once))


def _heads(bench: Bench, store: object, events: int) -> None:
    progress(f"head() of {events:,} events")
    first = _timed(store.head)  # type: ignore[attr-defined]
    bench.record("audit.head_first", "chatledger", {"events": events}, first * 1000, unit="ms")
    bench.target(GROUP, f"first head() of a {events:,}-event log (builds the tree)",
                 goal="info", actual=fmt(first * 1000, "ms"), ok=None)

    def append_then_head() -> object:
        store.append("audit-tail", [MessageAppended(message=HumanMessage("x"))])  # type: ignore[attr-defined]
        return store.head()  # type: ignore[attr-defined]
    t = measure(store.head, unit="ms", repeats=bench.size(7, 3))  # type: ignore[attr-defined]
    bench.record("audit.head_again", "chatledger", {"events": events}, t)
    bench.target(GROUP, f"head() after the first, {events:,} events", goal="≤ 50 ms",
                 actual=fmt(t.value, "ms"), ok=t.value <= 50)
    grown = measure(append_then_head, unit="ms", repeats=bench.size(5, 3), max_number=20)
    bench.record("audit.append_then_head", "chatledger", {"events": events}, grown)
    bench.target(GROUP, "one append then head() (reads and hashes only the new event)",
                 goal="info", actual=fmt(grown.value, "ms"), ok=None)
    head = store.head()  # type: ignore[attr-defined]
    report = None

    def against() -> None:
        nonlocal report
        report = store.verify(against=head)  # type: ignore[attr-defined]
    seconds = _timed(against)
    assert report is not None and report.ok
    rate = head.size / seconds
    bench.record("audit.verify_against", "chatledger", {"events": head.size}, rate,
                 unit="events/s")
    bench.target(GROUP, f"verify(against=head) of {head.size:,} events (verify plus the "
                 "tree and a consistency proof)", goal="info", actual=f"{fmt(rate)} events/s",
                 ok=None)


def _salting(bench: Bench) -> None:
    data = _codec.encode_event(MessageAppended(message=HumanMessage(
        "What is the weather like in Zürich this afternoon? " * 4)))
    salted = measure(lambda: _codec.payload_digest(data, _codec.new_salt()), unit="us")
    plain = measure(lambda: _codec.payload_digest(data), unit="us")
    cost = max(0.0, salted.value - plain.value)
    bench.record("audit.salting", "chatledger", {"payload_bytes": len(data)}, salted)
    bench.record("audit.unsalted_digest", "chatledger", {"payload_bytes": len(data)}, plain)
    bench.target(GROUP, f"cost of salting one event's payload digest ({len(data)} B payload)",
                 goal="≤ 5 µs per event", actual=fmt(cost, "µs"), ok=cost <= 5)
