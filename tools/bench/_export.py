"""``export``: the log to JSON lines (speed and memory), and importing LangChain rows.

Each export runs in a fresh process so its peak RSS is its own: the peak is reset just before
the export (``/proc/self/clear_refs``) and read after it, so the growth shown is what the export
itself held. Flat memory means the growth does not rise with the size of the log.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from chatledger.eventstore import open_store
from chatledger.tools.bench._data import lc_log, log
from chatledger.tools.bench._harness import Bench, Skip, fmt, progress

GROUP = "export"


def run(bench: Bench) -> None:
    """Run the group: export two log sizes to JSONL, import LangChain rows."""
    try:
        from chatledger.tools.export import export  # noqa: F401
        from chatledger.tools.importer import import_langchain_sqlite  # noqa: F401
    except ImportError as e:
        raise Skip(f"tools.export is not importable yet ({e})") from e
    small, big = bench.size(100_000, 10_000), bench.size(1_000_000, 100_000)
    growth: dict[int, float] = {}
    rates: dict[int, float] = {}
    for events in (small, big):
        lg = log(bench, events)
        out = bench.tmp / f"export-{events}.jsonl"
        runs = []
        context = multiprocessing.get_context("spawn")
        for _ in range(bench.size(3, 1)):
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                runs.append(pool.submit(export_in_child, lg.url, str(out)).result())
        if any(r["messages"] != events for r in runs):
            raise RuntimeError(f"export of the {events:,}-event log did not write {events:,} lines")
        seconds = statistics.median(r["seconds"] for r in runs)
        rates[events] = events / seconds
        growth[events] = statistics.median(r["peak_growth_mib"] for r in runs)
        params = {"messages": events, "format": "jsonl"}
        bench.record("export.jsonl", "chatledger", params, seconds, unit="s", samples=len(runs))
        bench.record("export.jsonl_rate", "chatledger", params, rates[events],
                     unit="messages/s", samples=len(runs))
        bench.record("export.peak_rss_growth", "chatledger", params, growth[events],
                     unit="MiB", samples=len(runs))
        out.unlink(missing_ok=True)
    profile_log = log(bench, small)
    bench.target(GROUP, f"export {big:,} messages to JSONL", chatledger=f"{rates[big]:,.0f}/s",
                 goal="≥ 200,000 messages/s", actual=f"{rates[big]:,.0f} messages/s",
                 ok=rates[big] >= 200_000,
                 profile=("export_jsonl", lambda: _export_once(profile_log.url,
                                                                bench.tmp / "profile.jsonl")))
    bench.target(GROUP, f"peak RSS growth of the export, {small:,} → {big:,} messages",
                 chatledger=f"{growth[small]:.1f} → {growth[big]:.1f} MiB", goal="flat",
                 actual=f"{growth[big] - growth[small]:+.1f} MiB", ok=None)
    _import(bench)


def export_in_child(url: str, out: str) -> dict[str, float]:
    """Export ``url`` to ``out`` in this (fresh) process; time it and measure its memory."""
    from chatledger.tools.export import export

    store = open_store(url)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = _status_kib("VmRSS")
    # No progress bar on a terminal: drawing it is not what is measured.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        started = time.perf_counter()
        summary = export(store, out, fmt="jsonl", key_filter={})
        seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    store.close()
    return {"messages": summary.messages, "seconds": seconds,
            "peak_growth_mib": (peak - before) / 1024}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _export_once(url: str, out: Path) -> None:
    from chatledger.tools.export import export

    store = open_store(url)
    try:
        export(store, str(out), fmt="jsonl", key_filter={})
    finally:
        store.close()


def _import(bench: Bench) -> None:
    """Import a LangChain ``message_store`` of 100k rows into a fresh log."""
    from chatledger.tools.importer import import_langchain_sqlite

    rows = bench.size(100_000, 10_000)
    source = lc_log(bench, rows)
    times = []
    for i in range(bench.size(3, 1)):
        store = open_store(f"sqlite:///{bench.tmp / f'import-{rows}-{i}.db'}")
        progress(f"importing {rows:,} LangChain rows")
        started = time.perf_counter()
        summary = import_langchain_sqlite(store, source.path)
        times.append(time.perf_counter() - started)
        store.close()
        if summary.imported != rows:
            raise RuntimeError(f"imported {summary.imported:,} of {rows:,} rows")
    seconds = statistics.median(times)
    params = {"rows": rows}
    bench.record("export.import_langchain", "chatledger", params, seconds, unit="s",
                 samples=len(times))
    bench.record("export.import_langchain_rate", "chatledger", params, rows / seconds,
                 unit="rows/s", samples=len(times))
    bench.target(GROUP, f"import {rows:,} LangChain SQLChatMessageHistory rows",
                 chatledger=f"{fmt(seconds, 's')} ({rows / seconds:,.0f} rows/s)", goal="—",
                 actual=f"{rows / seconds:,.0f} rows/s", ok=None)
