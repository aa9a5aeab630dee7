"""The data sets the groups share, built once per run through each system's own API.

chatledger logs are built with ``store.append`` (big logs in large batches with
``projections=False``, then projected on open); LangChain tables through
``SQLChatMessageHistory.add_messages`` or, for the largest, its own message converter in
bulk transactions. No row is ever written by hand.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import langchain_core  # noqa: F401  (imported before the filters below: it resets them)

from chatledger.eventstore import AIMessage, EventStore, HumanMessage, MessageAppended, open_store
from chatledger.tools.bench._harness import Bench, progress

# LangChain warns that SQLChatMessageHistory's package and RunnableWithMessageHistory are
# deprecated; that is why chatledger exists, and the warnings would bury the results.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r".*(deprecated|sunset).*")

HUMAN = "Can you summarise what we decided about the quarterly report and the next steps?"
AI = ("We agreed to move the launch to May, keep the pricing as it is, and send the draft "
      "to finance by Friday. Next: confirm the budget with Dana.")


def sqlite_url(path: Path) -> str:
    """The SQLite URL of a file path."""
    return f"sqlite:///{path}"


def turn(i: int) -> tuple[HumanMessage, AIMessage]:
    """One chat turn: a human message and the AI's answer."""
    return HumanMessage(content=f"{HUMAN} (#{i})"), AIMessage(content=f"{AI} (#{i})")


def lc_turn(i: int) -> tuple[Any, Any]:
    """The same turn as LangChain messages."""
    from langchain_core.messages import AIMessage as LCAIMessage
    from langchain_core.messages import HumanMessage as LCHumanMessage

    return LCHumanMessage(content=f"{HUMAN} (#{i})"), LCAIMessage(content=f"{AI} (#{i})")


def message_events(count: int, start: int = 0) -> list[MessageAppended]:
    """``count`` alternating human/AI message events."""
    out = []
    for i in range(start, start + count):
        human, ai = turn(i // 2)
        out.append(MessageAppended(message=human if i % 2 == 0 else ai))
    return out


def lc_messages(count: int, start: int = 0) -> list[Any]:
    """``count`` alternating LangChain human/AI messages."""
    out = []
    for i in range(start, start + count):
        human, ai = lc_turn(i // 2)
        out.append(human if i % 2 == 0 else ai)
    return out


def lc_history(session_id: str, connection: Any) -> Any:
    """A LangChain ``SQLChatMessageHistory`` on a SQLite URL or a SQLAlchemy engine."""
    from langchain_community.chat_message_histories import SQLChatMessageHistory

    return SQLChatMessageHistory(session_id, connection=connection)


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, count)`` pairs covering ``range(total)`` in pieces of at most ``size``."""
    for start in range(0, total, size):
        yield start, min(size, total - start)


@dataclass
class Sessions:
    """Both systems holding 1,000 other sessions of 10 messages plus the sessions to load."""

    store: EventStore
    url: str
    lc_url: str
    sizes: tuple[int, ...]
    others: int

    @staticmethod
    def key(size: int) -> str:
        """The session id of the session with ``size`` messages."""
        return f"load-{size}"


def sessions(bench: Bench) -> Sessions:
    """The shared sessions data set (built on first use)."""
    return bench.cached("sessions", lambda: _build_sessions(bench))


def _build_sessions(bench: Bench) -> Sessions:
    from sqlalchemy import create_engine

    sizes = (10, 1_000, 10_000)
    others = 1_000
    path = bench.tmp / "sessions.db"
    lc_path = bench.tmp / "sessions-langchain.db"
    progress(f"building {others:,} other sessions and sessions of {sizes} messages")
    store = open_store(sqlite_url(path), durability="fast")
    bench.on_exit(store.close)
    # The measured sessions are written in four parts among the others, as real traffic
    # interleaves sessions.
    parts = {size: list(chunks(size, -(-size // 4))) for size in sizes}
    for i in range(others):
        store.append(f"other-{i}", message_events(10))
        if i % (others // 4) == 0:
            for size in sizes:
                start, count = parts[size][i // (others // 4)]
                store.append(Sessions.key(size), message_events(count, start))
    lc_url = sqlite_url(lc_path)
    engine = create_engine(lc_url)
    for i in range(others):
        lc_history(f"other-{i}", engine).add_messages(lc_messages(10))
        if i % (others // 4) == 0:
            for size in sizes:
                start, count = parts[size][i // (others // 4)]
                lc_history(Sessions.key(size), engine).add_messages(lc_messages(count, start))
    engine.dispose()
    return Sessions(store, sqlite_url(path), lc_url, sizes, others)


@dataclass
class Log:
    """A chatledger log of ``events`` events in sessions of ``session_size`` messages."""

    url: str
    events: int
    session_size: int

    @property
    def path(self) -> str:
        """The database file."""
        return self.url.removeprefix("sqlite:///")

    @property
    def probe(self) -> str:
        """A session in the middle of the log, the one the loads read."""
        return f"s{self.events // self.session_size // 2}"


def log(bench: Bench, events: int, session_size: int = 100) -> Log:
    """A chatledger log of ``events`` events (built on first use, projections current)."""
    return bench.cached(("log", events), lambda: _build_log(bench, events, session_size))


def _build_log(bench: Bench, events: int, session_size: int) -> Log:
    path = bench.tmp / f"log-{events}.db"
    progress(f"building a chatledger log of {events:,} events (bulk appends, then projection)")
    bulk = open_store(sqlite_url(path), durability="fast", projections=False)
    batch = message_events(session_size)
    for s in range(events // session_size):
        bulk.append(f"s{s}", batch)
    bulk.close()
    store = open_store(sqlite_url(path))  # catches the projection up
    store.close()
    return Log(sqlite_url(path), events, session_size)


def lc_log(bench: Bench, rows: int, session_size: int = 100) -> Log:
    """A LangChain ``message_store`` of ``rows`` messages (built on first use)."""
    return bench.cached(("lc_log", rows), lambda: _build_lc_log(bench, rows, session_size))


def _build_lc_log(bench: Bench, rows: int, session_size: int) -> Log:
    from sqlalchemy import insert

    path = bench.tmp / f"langchain-{rows}.db"
    url = sqlite_url(path)
    progress(f"building a LangChain message_store of {rows:,} rows (its converter, bulk inserts)")
    history = lc_history("s0", url)
    model = history.sql_model_class
    batch = lc_messages(session_size)
    with history.engine.begin() as conn:
        for s in range(rows // session_size):
            sid = f"s{s}"
            values = []
            for m in batch:
                row = history.converter.to_sql_model(m, sid)
                values.append({"session_id": row.session_id, "message": row.message})
            conn.execute(insert(model), values)
    history.engine.dispose()
    return Log(url, rows, session_size)
