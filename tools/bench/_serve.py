"""``serve``: how long the web view takes to answer for a 10,000-message session.

The session is written as turns (a human message, the AI's answer, the run), so it holds
15,000 events; the log also holds 1,000 other sessions. Pages are fetched through Starlette's
test client, so the figures are the app's own time (routing, store reads, rendering) without
a network hop. The first request, which also builds the fork index over the catalog, is
timed on its own.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from chatledger.eventstore import RunRecorded, SessionKey, open_store
from chatledger.tools.bench._data import message_events, sqlite_url
from chatledger.tools.bench._harness import Bench, Skip, fmt, measure, progress

GROUP = "serve"
MESSAGES = 10_000


def run(bench: Bench) -> None:
    """Run the group: the chat, history and log pages of a 10,000-message session."""
    try:
        from starlette.testclient import TestClient

        from chatledger.tools.serve import create_app
    except ImportError as e:
        raise Skip(f"the serve extra is not installed ({e})") from e
    key = SessionKey(user_id="bench", conversation_id="big")
    path = bench.tmp / "serve.db"
    progress(f"building a {MESSAGES:,}-message session among 1,000 others")
    store = open_store(sqlite_url(path), durability="fast")
    bench.on_exit(store.close)
    for i in range(1_000):
        store.append(f"other-{i}", message_events(10))
    for start in range(0, MESSAGES, 2):
        before = start // 2 * 3  # each turn is three events: human, AI, run
        store.append(key, [*message_events(2, start),
                           RunRecorded(run_id=f"run-{start}", status="ok", latency_ms=1.0,
                                       history_version=before, input_versions=[before + 1],
                                       output_versions=[before + 2])])
    client = TestClient(create_app(store))
    pages = {
        "chat": "/session?" + urlencode({"sid": key.stream_id}),
        "history": "/session?" + urlencode({"sid": key.stream_id, "view": "history"}),
        "middle": "/session?" + urlencode({"sid": key.stream_id, "version": 7_500}),
        "log": "/log?" + urlencode({"sid": key.stream_id, "after": 7_500}),
    }

    def fetch(url: str) -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")

    started = time.perf_counter()
    fetch(pages["chat"])
    first = (time.perf_counter() - started) * 1000
    params = {"messages": MESSAGES, "events": MESSAGES * 3 // 2, "other_sessions": 1_000}
    bench.record("serve.first_request", "chatledger", params, first, unit="ms")
    bench.target(GROUP, f"first session page after start ({MESSAGES:,} messages; also builds "
                 "the fork index of 1,001 sessions)", chatledger=fmt(first, "ms"), goal="—",
                 actual=fmt(first, "ms"), ok=None)
    labels = {
        "chat": f"session page, {MESSAGES:,} messages (last 100 events)",
        "history": f"history view, {MESSAGES:,} messages (as-of load, last 100 shown)",
        "middle": "session page at version 7,500 (slider moved)",
        "log": "log page: 100 rows + verify of the session's 15,000 events",
    }
    for name, url in pages.items():
        timing = measure(lambda url=url: fetch(url), unit="ms",
                         repeats=bench.size(7, 3), min_time=0.2, max_number=20)
        bench.record(f"serve.{name}", "chatledger", params, timing)
        limit = 1000.0 if name != "log" else None
        bench.target(GROUP, labels[name], chatledger=fmt(timing.value, "ms"),
                     goal="≤ 1 s" if limit else "—", actual=fmt(timing.value, "ms"),
                     ok=None if limit is None else timing.value <= limit,
                     profile=(f"serve_{name}", lambda url=url: fetch(url)))
