"""``python -m chatledger.tools.bench``: run the benchmark groups, print JSON lines, then the table.

Groups: append, history, runtime, postgres, export, serve, audit, langgraph. A group whose
package is not there yet is skipped with the reason; every figure lands in ``bench-results/``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

from chatledger.tools.bench._harness import Bench, Skip, progress

GROUPS = ("append", "history", "runtime", "postgres", "export", "serve", "audit", "langgraph")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen groups; exit 1 only if a group crashed (a missed target is a figure)."""
    parser = argparse.ArgumentParser(prog="python -m chatledger.tools.bench", description=__doc__)
    parser.add_argument("--only", action="append", metavar="GROUP",
                        help=f"run only these groups (repeat or comma-separate): {', '.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer repeats: a smoke run of about two minutes")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="where results.json, table.md and profiles go (default: %(default)s)")
    args = parser.parse_args(argv)
    chosen = [g.strip() for item in args.only or [",".join(GROUPS)] for g in item.split(",")]
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")

    tmp = Path(tempfile.mkdtemp(prefix="chatledger-bench-"))
    bench = Bench(quick=args.quick, out_dir=args.out, tmp=tmp,
                  postgres_url=os.environ.get("CHATLEDGER_BENCH_POSTGRES_URL",
                                              DEFAULT_POSTGRES_URL))
    started = time.perf_counter()
    crashed = False
    try:
        for group in GROUPS:
            if group not in chosen:
                continue
            progress(f"group {group}")
            group_started = time.perf_counter()
            try:
                importlib.import_module(f"chatledger.tools.bench._{group}").run(bench)
            except Skip as e:
                bench.skip(group, str(e))
            except Exception as e:
                crashed = True
                traceback.print_exc()
                bench.skip(group, f"crashed: {type(e).__name__}: {e}")
            progress(f"group {group} took {time.perf_counter() - group_started:.1f} s")
    finally:
        bench.close()
        shutil.rmtree(tmp, ignore_errors=True)
    bench.report(time.perf_counter() - started)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
