"""Shared timing, results, targets, profiles and the report of ``make bench``.

Every measurement is printed as one JSON line the moment it is taken; targets collect into
the human table printed (and written to ``table.md``) at the end.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
N = TypeVar("N", int, float)

UNITS_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
SHOW_UNIT = {"us": "µs"}


class Skip(Exception):
    """A group cannot run here yet (a package it measures is missing); the message says why."""


@dataclass
class Timing:
    """A timed operation: ``value`` is the median over rounds of the mean cost per call (or,
    from ``measure_each``, the median call); p50 and p95 are over single calls."""

    value: float
    p50: float
    p95: float
    samples: int
    unit: str


@dataclass
class Result:
    """One measurement, as printed in a JSON line and stored in results.json."""

    name: str
    system: str
    params: dict[str, Any]
    unit: str
    value: float
    samples: int
    p50: float | None = None
    p95: float | None = None
    curve: list[list[float]] | None = None  # [x, value] points, e.g. latency by history length


@dataclass
class Target:
    """One row of the table: a figure held against a target from the issues."""

    group: str
    label: str
    chatledger: str
    langchain: str
    goal: str
    actual: str
    ok: bool | None  # None: a figure shown for context, with no target to pass or miss
    profile: str | None = None


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def measure(
    fn: Callable[[], object],
    *,
    unit: str = "us",
    repeats: int = 7,
    min_time: float = 0.05,
    max_number: int = 1000,
    warmup: int = 3,
) -> Timing:
    """Time ``fn()``: a few warm-up calls, then ``repeats`` rounds of calls.

    Each round runs enough calls to last about ``min_time`` seconds (at most ``max_number``);
    every call is timed on its own too, for p50 and p95.
    """
    return measure_together({"fn": fn}, unit=unit, repeats=repeats, min_time=min_time,
                            max_number=max_number, warmup=warmup)["fn"]


def measure_together(
    fns: dict[str, Callable[[], object]],
    *,
    unit: str = "us",
    repeats: int = 7,
    min_time: float = 0.05,
    max_number: int = 1000,
    warmup: int = 3,
) -> dict[str, Timing]:
    """``measure`` several operations with their rounds interleaved (a round of each in turn),
    so a change in the machine's background load weighs on all of them alike."""
    numbers = {name: _calls_per_round(fn, min_time, max_number, warmup)
               for name, fn in fns.items()}
    calls: dict[str, list[float]] = {name: [] for name in fns}
    rounds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            number = numbers[name]
            gc.collect()  # no round pays for the garbage of the one before it
            round_start = time.perf_counter_ns()
            for _ in range(number):
                started = time.perf_counter_ns()
                fn()
                calls[name].append(float(time.perf_counter_ns() - started))
            rounds[name].append((time.perf_counter_ns() - round_start) / number)
    scale = UNITS_NS[unit]
    return {name: Timing(value=statistics.median(rounds[name]) / scale,
                         p50=percentile(calls[name], 50) / scale,
                         p95=percentile(calls[name], 95) / scale,
                         samples=len(calls[name]), unit=unit)
            for name in fns}


def _calls_per_round(fn: Callable[[], object], min_time: float, max_number: int,
                     warmup: int) -> int:
    """Warm ``fn`` up; the number of calls that lasts about ``min_time`` seconds."""
    estimate = float("inf")
    for _ in range(max(1, warmup)):
        started = time.perf_counter_ns()
        fn()
        estimate = min(estimate, max(time.perf_counter_ns() - started, 1))
    return max(1, min(max_number, int(min_time * 1e9 / estimate)))


def measure_each(fn: Callable[[int], object], count: int, *, unit: str = "ms",
                 warmup: int = 2) -> Timing:
    """Time ``fn(i)`` once for each ``i`` in ``range(count)`` (after ``warmup`` untimed calls
    with negative ``i``); ``value`` is the median call. For calls that each need fresh state."""
    return measure_each_together({"fn": (fn, count)}, unit=unit, warmup=warmup)["fn"]


def measure_each_together(fns: dict[str, tuple[Callable[[int], object], int]], *,
                          unit: str = "ms", warmup: int = 2) -> dict[str, Timing]:
    """``measure_each`` for several operations, their calls interleaved one by one."""
    for fn, _ in fns.values():
        for i in range(-warmup, 0):
            fn(i)
    gc.collect()
    calls: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(max(count for _, count in fns.values())):
        for name, (fn, count) in fns.items():
            if i < count:
                started = time.perf_counter_ns()
                fn(i)
                calls[name].append(float(time.perf_counter_ns() - started))
    scale = UNITS_NS[unit]
    return {name: Timing(value=statistics.median(c) / scale, p50=percentile(c, 50) / scale,
                         p95=percentile(c, 95) / scale, samples=len(c), unit=unit)
            for name, c in calls.items()}


def fmt(value: float, unit: str = "") -> str:
    """A figure with enough digits that nothing is rounded across a target line."""
    if value >= 1000:
        text = f"{value:,.0f}"
    elif value >= 100:
        text = f"{value:.1f}"
    elif value >= 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    shown = SHOW_UNIT.get(unit, unit)
    return f"{text} {shown}".strip()


def ratio(value: float) -> str:
    """A ratio such as ``4.21x``."""
    return f"{value:.2f}x"


def speedup(theirs: float, ours: float) -> str:
    """How much faster ours is (times are smaller-is-better), or how much slower."""
    if ours <= theirs:
        return f"{theirs / ours:.2f}x faster"
    return f"{ours / theirs:.2f}x slower"


def machine(postgres_url: str) -> dict[str, Any]:
    """The machine a run measured: CPU, cores, RAM and the versions that matter."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 2**20
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(postgres_url),
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
    }
    for package in ("chatledger", "langchain-core", "langchain-community", "langchain-postgres",
                    "sqlalchemy", "msgspec"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    return info


def postgres_version(url: str) -> str:
    """The server's version, or why it could not be asked."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception as e:  # any failure only means the server is not there to describe
        return f"unavailable ({type(e).__name__})"


def progress(text: str) -> None:
    """A progress line on stderr, so stdout stays JSON lines and the table."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    """The state of one run: options, results, targets, shared data sets."""

    quick: bool
    out_dir: Path
    tmp: Path
    postgres_url: str
    results: list[Result] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    _cache: dict[Any, Any] = field(default_factory=dict)
    _cleanups: list[Callable[[], object]] = field(default_factory=list)
    _profiles: dict[str, str] = field(default_factory=dict)
    load_at_start: float = field(default_factory=lambda: os.getloadavg()[0])
    loads: list[float] = field(default_factory=list)  # sampled at each measurement

    def size(self, full: N, quick: N) -> N:
        """``full`` on a full run, ``quick`` with ``--quick``."""
        return quick if self.quick else full

    def cached(self, key: Any, build: Callable[[], T]) -> T:
        """Build a data set (or take a measurement) once per run and share it across groups."""
        if key not in self._cache:
            self._cache[key] = build()
        value: T = self._cache[key]
        return value

    def on_exit(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` when the run ends (close stores, dispose engines)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        """Run the cleanups, last registered first."""
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as e:  # cleanup of scratch data must not hide the report
                progress(f"cleanup failed: {e}")

    def record(self, name: str, system: str, params: dict[str, Any], figure: Timing | float,
               *, unit: str | None = None, samples: int = 1,
               curve: list[list[float]] | None = None) -> Result:
        """Store one measurement and print it as a JSON line."""
        if isinstance(figure, Timing):
            result = Result(name, system, params, figure.unit, figure.value, figure.samples,
                            figure.p50, figure.p95, curve)
        else:
            result = Result(name, system, params, unit or "", float(figure), samples,
                            curve=curve)
        self.results.append(result)
        self.loads.append(os.getloadavg()[0])
        print(json.dumps(asdict(result), ensure_ascii=False), flush=True)
        return result

    def target(self, group: str, label: str, *, goal: str, actual: str, ok: bool | None,
               chatledger: str = "—", langchain: str = "—",
               profile: tuple[str, Callable[[], object]] | None = None) -> None:
        """Add a table row; on a miss, profile ``profile = (name, operation)``."""
        row = Target(group, label, chatledger, langchain, goal, actual, ok)
        if ok is False and profile is not None:
            row.profile = self.profile(*profile)
        self.targets.append(row)
        state = {True: "pass", False: "MISS", None: "info"}[ok]
        progress(f"{state}: {group} / {label}: {actual} (target {goal})")

    def profile(self, name: str, op: Callable[[], object], *, seconds: float = 2.0) -> str:
        """Run ``op`` under pyinstrument for about ``seconds``; save and print the top frames."""
        from pyinstrument import Profiler

        if name in self._profiles:
            return self._profiles[name]
        profiler = Profiler(interval=0.001)  # finer sampling made the rendering of long runs take hours
        calls = 0
        profiler.start()
        deadline = time.perf_counter() + seconds
        try:
            while calls == 0 or time.perf_counter() < deadline:
                op()
                calls += 1
        finally:
            profiler.stop()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"profile_{name}.txt"
        text = profiler.output_text(unicode=True, color=False)
        session = profiler.last_session
        top = top_frames(session.root_frame()) if session else []
        summary = [f"{calls} calls; top frames by self time:"]
        summary += [f"  {share:5.1f}%  {where}" for where, share in top]
        path.write_text(text + "\n" + "\n".join(summary) + "\n")
        progress(f"profile of {name} ({path}):\n" + "\n".join(summary))
        self._profiles[name] = "\n".join(summary)
        return self._profiles[name]

    def skip(self, group: str, reason: str) -> None:
        """Note that a group did not run, and why."""
        self.skipped[group] = reason
        progress(f"skipped {group}: {reason}")
        print(json.dumps({"skipped": group, "reason": reason}), flush=True)

    # -- the report ----------------------------------------------------------------------------
    def table(self, info: dict[str, Any], seconds: float) -> str:
        """The Markdown table: chatledger vs LangChain vs target, pass or miss."""
        lines = [
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; "
            f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}; "
            f"langchain-core {info['langchain-core']}, langchain-community "
            f"{info['langchain-community']}. "
            f"{'Quick' if self.quick else 'Full'} run, {seconds / 60:.1f} min; load average "
            f"{self.load_at_start:.2f} at start, {info['loadavg_1min_at_end']:.2f} at end.",
            "",
        ]
        during = statistics.median(self.loads) if self.loads else 0.0
        # At the start only other work shows in the load; during the run this one adds ~1.
        if self.load_at_start > 0.5 or during > 1.5:
            lines += [f"Note: the machine was busy with other work (load average {during:.2f} "
                      f"median during the run, {self.load_at_start:.2f} before it, on "
                      f"{info['cores']} cores); timings, commit latencies above all, are "
                      "inflated. Re-run on a quiet machine before quoting them.", ""]
        lines += [
            "| group | measurement | chatledger | LangChain | target | actual | result |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for t in self.targets:
            state = {True: "pass", False: "**miss**", None: "info"}[t.ok]
            lines.append(f"| {t.group} | {t.label} | {t.chatledger} | {t.langchain} | {t.goal} "
                         f"| {t.actual} | {state} |")
        for group, reason in self.skipped.items():
            lines.append(f"| {group} | skipped: {reason} | | | | | skipped |")
        return "\n".join(lines) + "\n"

    def report(self, seconds: float) -> None:
        """Print the table and write results.json and table.md."""
        info = machine(self.postgres_url)
        table = self.table(info, seconds)
        print()
        print(table)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": info,
            "quick": self.quick,
            "duration_s": round(seconds, 1),
            "loadavg_1min_at_start": round(self.load_at_start, 2),
            "loadavg_1min_during": [round(x, 2) for x in self.loads],
            "results": [asdict(r) for r in self.results],
            "targets": [asdict(t) for t in self.targets],
            "skipped": self.skipped,
        }
        (self.out_dir / "results.json").write_text(json.dumps(payload, indent=1,
                                                              ensure_ascii=False) + "\n")
        (self.out_dir / "table.md").write_text(table)


def top_frames(root: Any, limit: int = 8) -> list[tuple[str, float]]:
    """The functions with the most self time in a pyinstrument frame tree, as % of the total."""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        children = [c for c in frame.children if not c.is_synthetic]
        own = frame.time - sum(c.time for c in children)
        if not frame.is_synthetic and not (frame.file_path_short or "").endswith("_harness.py"):
            where = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
            totals[where] = totals.get(where, 0.0) + own
        stack.extend(children)
    whole = root.time or 1.0
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    return [(where, 100 * own / whole) for where, own in ranked]
