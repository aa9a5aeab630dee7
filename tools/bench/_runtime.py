"""``runtime``: a chat turn through ``RunnableWithMessageHistory``, chatledger vs LangChain.

Both wrap ``prompt | fake model`` with the same prompt shape and build the history in the
factory per call, as LangChain's how-to does: ``ChatHistory(session_id, url)`` against
``SQLChatMessageHistory(session_id, connection=url)``, each on its own SQLite file.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from chatledger.projections import ChatHistory, shared_store
from chatledger.tools.bench._data import (
    AI,
    HUMAN,
    lc_history,
    lc_log,
    lc_messages,
    log,
    message_events,
    sqlite_url,
)
from chatledger.tools.bench._harness import (
    Bench,
    Skip,
    fmt,
    measure_each_together,
    progress,
    ratio,
    speedup,
)

GROUP = "runtime"
SYSTEM = "You are a helpful assistant who answers in one short paragraph."

Invoke = Callable[[str], Any]


def _ours(url: str, *, record: bool = True) -> Invoke:
    try:
        from chatledger.runtime import (
            ChatPromptTemplate,
            MessagesPlaceholder,
            RunnableWithMessageHistory,
        )
        from chatledger.runtime.models import FakeChatModel
    except ImportError as e:
        raise Skip(f"runtime.RunnableWithMessageHistory is not importable yet ({e})") from e
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM), MessagesPlaceholder(variable_name="history"), ("human", "{input}")])
    wrapper = RunnableWithMessageHistory if record else _unrecorded_chain
    chain = wrapper(
        prompt | FakeChatModel([AI]), lambda session_id: ChatHistory(session_id, url),
        input_messages_key="input", history_messages_key="history")
    return lambda session_id: chain.invoke(
        {"input": HUMAN}, config={"configurable": {"session_id": session_id}})


def _unrecorded_class() -> type:
    from chatledger.runtime import RunnableWithMessageHistory

    class Unrecorded(RunnableWithMessageHistory):
        """The turn as it was before turns recorded their chain input and model calls."""

        def _turn(self, *args: Any, **kwargs: Any) -> Any:
            turn = super()._turn(*args, **kwargs)  # type: ignore[misc]
            turn.recorder = None
            turn.chain_input = None
            return turn

    return Unrecorded


def _unrecorded_chain(*args: Any, **kwargs: Any) -> Any:
    return _unrecorded_class()(*args, **kwargs)


def _langchain(url: str) -> Invoke:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM), MessagesPlaceholder(variable_name="history"), ("human", "{input}")])
    chain = RunnableWithMessageHistory(
        prompt | FakeListChatModel(responses=[AI]),
        lambda session_id: lc_history(session_id, url),
        input_messages_key="input", history_messages_key="history")
    return lambda session_id: chain.invoke(
        {"input": HUMAN}, config={"configurable": {"session_id": session_id}})


def run(bench: Bench) -> None:
    """Run the group: a 200-turn conversation, turns at history 10 and 1,000, a busy database."""
    folder = bench.tmp / "runtime"
    folder.mkdir()
    url, lc_url = sqlite_url(folder / "chatledger.db"), sqlite_url(folder / "langchain.db")
    ours, theirs = _ours(url), _langchain(lc_url)
    bench.on_exit(lambda: shared_store(url).close())
    _conversation(bench, ours, theirs)
    for history, goal in ((10, 20.0), (1_000, 75.0)):
        t = measure_each_together({
            "chatledger": _turn_op("chatledger", ours, url, history, bench.size(60, 15)),
            "langchain": _turn_op("langchain", theirs, lc_url, history, bench.size(30, 8)),
        })
        a = bench.record("runtime.turn", "chatledger", {"history": history}, t["chatledger"])
        b = bench.record("runtime.turn", "langchain", {"history": history}, t["langchain"])
        _seed("chatledger", url, [f"turn-{history}-{i}" for i in range(8)], history)
        bench.target(GROUP, f"one turn at history {history:,}", chatledger=fmt(a.value, "ms"),
                     langchain=fmt(b.value, "ms"), goal=f"≥ {goal:g}x faster",
                     actual=speedup(b.value, a.value), ok=b.value / a.value >= goal,
                     profile=(f"runtime_turn_{history}", _spinner(ours, f"turn-{history}")))
    _recording_cost(bench, ours, url)
    _flat(bench, ours, url)
    _first_turn(bench, ours, url)
    _busy(bench, (ours, url), (theirs, lc_url))


def _recording_cost(bench: Bench, ours: Invoke, url: str) -> None:
    """What recording a turn's chain input and model call adds, against the same turn without."""
    bare = _ours(url, record=False)
    for history in (10, 1_000):
        count = bench.size(60, 15)
        t = measure_each_together({
            "recorded": _turn_op("chatledger", ours, url, history, count),
            "unrecorded": _turn_op("chatledger", bare, url, history, count),
        })
        a, b = t["recorded"], t["unrecorded"]
        bench.record("runtime.recording", "chatledger", {"history": history, "recorded": True}, a)
        bench.record("runtime.recording", "chatledger", {"history": history, "recorded": False},
                     b)
        over = a.value / b.value - 1.0
        bench.target(GROUP, f"recording a turn's chain input and model call, history "
                     f"{history:,} (vs the same turn unrecorded: {fmt(b.value, 'ms')})",
                     chatledger=fmt(a.value, "ms"), langchain="—", goal="≤ 10% over",
                     actual=f"{over:+.1%}", ok=over <= 0.10)


def _spinner(invoke: Invoke, prefix: str) -> Callable[[], object]:
    """Turns spread over the few sessions seeded for profiling, so each stays near its size."""
    spin = itertools.count()
    return lambda: invoke(f"{prefix}-{next(spin) % 8}")


def _conversation(bench: Bench, ours: Invoke, theirs: Invoke) -> None:
    """Per-turn latency over a 200-turn conversation, the median of a few conversations."""
    turns = bench.size(200, 60)
    runs = bench.size(3, 1)
    invokes = {"chatledger": ours, "langchain": theirs}
    samples: dict[str, list[list[float]]] = {s: [[] for _ in range(turns)] for s in invokes}
    progress(f"{runs} x {turns}-turn conversation with each system")
    for system, invoke in invokes.items():
        invoke(f"conversation-warmup-{system}")
    for r in range(runs):  # the systems take turns, one conversation each
        for system, invoke in invokes.items():
            for t in range(turns):
                started = time.perf_counter_ns()
                invoke(f"conversation-{r}")
                samples[system][t].append((time.perf_counter_ns() - started) / 1e6)
    curves: dict[str, list[float]] = {}
    for system in invokes:
        curves[system] = [statistics.median(s) for s in samples[system]]
        bench.record("runtime.conversation_turn", system, {"turns": turns, "conversations": runs},
                     statistics.mean(curves[system]), unit="ms", samples=turns * runs,
                     curve=[[2.0 * t, v] for t, v in enumerate(curves[system])])
    ours_mean, lc_mean = (statistics.mean(curves[s]) for s in ("chatledger", "langchain"))
    bench.target(GROUP, f"mean turn over a {turns}-turn conversation",
                 chatledger=fmt(ours_mean, "ms"), langchain=fmt(lc_mean, "ms"), goal="—",
                 actual=speedup(lc_mean, ours_mean), ok=None)
    _plot(bench, curves)


def _plot(bench: Bench, curves: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for system, label in (("chatledger", "chatledger"),
                          ("langchain", "LangChain (SQLChatMessageHistory)")):
        ax.plot([2 * t for t in range(len(curves[system]))], curves[system], label=label)
    ax.set_xlabel("messages in the history before the turn")
    ax.set_ylabel("turn latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title("RunnableWithMessageHistory: one turn, SQLite, fake chat model")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    bench.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(bench.out_dir / "runtime_latency.png", dpi=120)
    plt.close(fig)


def _turn_op(system: str, invoke: Invoke, url: str, history: int,
             count: int) -> tuple[Callable[[int], object], int]:
    """Call ``i`` runs one turn on its own session, which holds exactly ``history`` messages.

    Each session is seeded with ``history - 2`` messages and has had one turn through the
    wrapper already, untimed: the measured turn is one in a conversation this app process is
    serving, as in a chat app (its first turn in a process is ``_first_turn``).
    """
    prefix = f"turn-{system}-{history}-{next(_SEEDS)}"
    sessions = [f"{prefix}-{i}" for i in range(-2, count)]
    _seed(system, url, sessions, history - 2)
    for session in sessions:
        invoke(session)
    return (lambda i: invoke(f"{prefix}-{i}")), count


def _flat(bench: Bench, ours: Invoke, url: str) -> None:
    """Turns at history 10 and 1,000 interleaved with each other, and nothing else: a peer's
    own disk writes in between would load one size's commits more than the other's."""
    count = bench.size(60, 15)
    t = measure_each_together({
        f"history-{h}": _turn_op("chatledger", ours, url, h, count) for h in (10, 1_000)})
    a, b = (bench.record("runtime.turn_flat", "chatledger", {"history": h}, t[f"history-{h}"])
            for h in (10, 1_000))
    bench.target(GROUP, "one turn, history 10 → 1,000 (the turn's own cost, flat)",
                 chatledger=f"{fmt(a.value, 'ms')} → {fmt(b.value, 'ms')}", langchain="—",
                 goal="≤ 1.5x", actual=ratio(b.value / a.value), ok=b.value / a.value <= 1.5,
                 profile=("runtime_turn_1000", _spinner(ours, "turn-1000")))


def _first_turn(bench: Bench, ours: Invoke, url: str) -> None:
    """The first turn of a session in this process: its history is decoded in full once."""
    t = measure_each_together({
        f"history-{h}": _cold_op(ours, url, h, bench.size(40, 10)) for h in (10, 1_000)})
    a, b = (bench.record("runtime.first_turn", "chatledger", {"history": h},
                         t[f"history-{h}"]) for h in (10, 1_000))
    bench.target(GROUP, "first turn of a session in this process, history 10 → 1,000",
                 chatledger=f"{fmt(a.value, 'ms')} → {fmt(b.value, 'ms')}", langchain="—",
                 goal="—", actual=ratio(b.value / a.value), ok=None)


def _cold_op(invoke: Invoke, url: str, history: int,
             count: int) -> tuple[Callable[[int], object], int]:
    prefix = f"first-turn-{history}-{next(_SEEDS)}"
    _seed("chatledger", url, [f"{prefix}-{i}" for i in range(-2, count)], history)
    return (lambda i: invoke(f"{prefix}-{i}")), count


_SEEDS = itertools.count()


def _seed(system: str, url: str, session_ids: list[str], history: int) -> None:
    if system == "chatledger":
        store = shared_store(url)
        for sid in session_ids:
            store.append(sid, message_events(history))
    else:
        from sqlalchemy import create_engine

        engine = create_engine(url)
        for sid in session_ids:
            lc_history(sid, engine).add_messages(lc_messages(history))
        engine.dispose()


def _busy(bench: Bench, quiet: tuple[Invoke, str], lc_quiet: tuple[Invoke, str]) -> None:
    """A turn at history 10 in a database that also holds many other sessions' messages."""
    others = bench.size(200_000, 50_000)
    lg, lc = log(bench, others), lc_log(bench, others)
    busy, lc_busy = _ours(lg.url), _langchain(lc.url)
    bench.on_exit(lambda: shared_store(lg.url).close())
    count, lc_count = bench.size(60, 15), bench.size(20, 5)
    t = measure_each_together({
        "chatledger-quiet": _turn_op("chatledger", *quiet, 10, count),
        "chatledger-busy": _turn_op("chatledger", busy, lg.url, 10, count),
        "langchain-quiet": _turn_op("langchain", *lc_quiet, 10, lc_count),
        "langchain-busy": _turn_op("langchain", lc_busy, lc.url, 10, lc_count),
    })
    for name, timing in t.items():
        system, db = name.split("-")
        bench.record("runtime.turn_in_db", system,
                     {"history": 10, "other_messages": others if db == "busy" else 0}, timing)
    a, b = t["chatledger-quiet"].value, t["chatledger-busy"].value
    lc_a, lc_b = t["langchain-quiet"].value, t["langchain-busy"].value
    _seed("chatledger", lg.url, [f"turn-busy-{i}" for i in range(8)], 10)
    bench.target(GROUP, f"one turn at history 10, database also holding {others:,} other "
                 "messages", chatledger=f"{fmt(a, 'ms')} → {fmt(b, 'ms')}",
                 langchain=f"{fmt(lc_a, 'ms')} → {fmt(lc_b, 'ms')}",
                 goal="≤ 1.3x (no slowdown)", actual=ratio(b / a), ok=b / a <= 1.3,
                 profile=("runtime_turn_busy", _spinner(busy, "turn-busy")))
