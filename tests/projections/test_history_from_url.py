"""ChatHistory built from a URL: the constructor does no I/O, the store opens on first use (off
the event loop for the async methods), once per URL per process."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from chatledger.eventstore import HumanMessage, StoreError, open_store
from chatledger.projections import ChatHistory
from tests.pgsupport import postgres_empty_schema_url, postgres_test_schema, postgres_url

TABLES = "events, streams, history, clears, stream_keys, chatledger_migrations"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
def test_an_async_factory_building_a_history_never_blocks_the_event_loop(
        tmp_path: Path) -> None:
    """An ``async`` get_session_history that builds ChatHistory from a URL not opened yet, then
    awaits aget_messages, while another connection holds the tables locked for a second:
    the store opens in a worker thread, so a ticker on the loop is never held up."""
    schema = postgres_test_schema(tmp_path)
    url = postgres_empty_schema_url(schema)
    with open_store(url) as store:
        ChatHistory("k", store).add_user_message("hi")
    fresh_url = f"{url}&application_name=chatledger_test_{uuid.uuid4().hex[:12]}"
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with psycopg.connect(postgres_url()) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(1.0)

    async def main() -> tuple[float, list[str]]:
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - started - 0.005)

        async def get_session_history(session_id: str) -> ChatHistory:
            return ChatHistory(session_id, fresh_url)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        history = await get_session_history("k")
        messages = await history.aget_messages()
        done.set()
        await tick
        return max(lags), [m.text for m in messages]

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        worst, texts = asyncio.run(main())
        assert time.monotonic() - started >= 0.5  # it did wait for the lock
    finally:
        release.set()
        holder.join()
    assert texts == ["hi"]
    assert worst < 0.05, f"the event loop was blocked for {worst * 1000:.0f} ms"


def test_constructing_from_a_url_does_no_io_and_first_use_raises(tmp_path: Path) -> None:
    """A URL whose database cannot be reached builds a ChatHistory; each method that uses the
    store raises the opening's StoreError (sync and async alike)."""
    url = f"postgresql://u:s3cr3t@127.0.0.1:{_unused_port()}/db?connect_timeout=2"
    started = time.monotonic()
    history = ChatHistory("k", url)
    assert time.monotonic() - started < 0.05
    assert "s3cr3t" not in repr(history)
    with pytest.raises(StoreError, match="cannot connect") as info:
        history.messages  # noqa: B018
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(StoreError, match="cannot connect"):
        asyncio.run(history.aget_messages())
    with pytest.raises(StoreError, match="cannot connect"):
        asyncio.run(history.aadd_messages([HumanMessage("lost")]))


def test_a_malformed_url_raises_at_construction_or_first_use(tmp_path: Path) -> None:
    """An unknown scheme is refused at construction; a PostgreSQL URL with a bad parameter,
    by the first use, as the opening of its store does."""
    with pytest.raises(StoreError, match="unknown database URL"):
        ChatHistory("k", "mysql://u:pw@h/db")
    history = ChatHistory("k", "postgresql://u@127.0.0.1/db?schema=Not-An-Identifier")
    with pytest.raises(StoreError, match="schema 'Not-An-Identifier'"):
        history.load()


def test_histories_of_one_url_share_one_store(tmp_path: Path) -> None:
    """ChatHistory objects of one URL share the store opened for it, before and after it is
    opened."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = ChatHistory("a", url), ChatHistory("b", url)
    first.add_user_message("one")
    third = ChatHistory("a", url)
    assert first.store is second.store is third.store
    assert [m.text for m in asyncio.run(third.aget_messages())] == ["one"]
    assert repr(third) == f"ChatHistory({third.key!r}, {url!r})"
