"""The history cache: a cached load always equals an uncached one, in any process.

A cached load reads only the events after the cached version; appends, clears, erasures,
forks, tags and runs made through another store object (another process's view) or by other
OS processes must all show up in the next load, exactly as ``load_history`` has them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    MessageAppended,
    SessionKey,
    open_store,
)
from chatledger.projections import ChatHistory, HistoryCache, HistoryView, history_cache
from tests.pgsupport import postgres_schema_url, postgres_test_schema
from tests.projections.test_history_properties import OPERATIONS, PROPERTY_SETTINGS, Scenario
from tests.stores import fresh_store

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

SHARED_BACKENDS = ["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)]


def _uncached(store: EventStore, key: SessionKey) -> HistoryView:
    return HistoryView(*store.load_history(key))


@pytest.mark.parametrize("kind", SHARED_BACKENDS)
@settings(PROPERTY_SETTINGS, max_examples=30)
@given(operations=OPERATIONS)
def test_cached_loads_equal_uncached_loads_across_store_objects(
    kind: str, operations: list[tuple[Any, ...]]
) -> None:
    """Two stores on one database (two caches), writing in turn: every cached load is exact."""
    with fresh_store(kind) as first:
        second = open_store(first.url)
        try:
            stores = [first, second]
            run = uuid.uuid4().hex
            keys = [SessionKey(run=run, user_id=u, conversation_id=c)
                    for u, c in (("u1", "c1"), ("u1", "c2"), ("u2", "c1"))]
            scenario = Scenario(store=first, keys=keys, run=run)
            for i, operation in enumerate(operations):
                scenario.store = stores[i % 2]
                scenario.apply(operation)
                for key in scenario.keys:
                    expected = _uncached(first, key)
                    for store in stores:
                        assert ChatHistory(key, store).load() == expected, (operation, key)
        finally:
            second.close()


def test_a_warm_load_reads_only_the_new_events(db_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first load, a load reads the log after the cached version, not the history."""
    store = open_store(db_url)
    history = ChatHistory("s", store)
    history.add_messages([HumanMessage(content=f"m{i}") for i in range(50)])
    assert len(history.load().messages) == 50
    full_loads: list[SessionKey] = []
    reads: list[int] = []
    load_history, read = store.load_history, store.read
    monkeypatch.setattr(store, "load_history", lambda key: full_loads.append(key) or
                        load_history(key))
    monkeypatch.setattr(store, "read", lambda key, **kw: reads.append(kw["after_version"]) or
                        read(key, **kw))
    history.add_messages([AIMessage(content="new")])
    view = history.load()
    assert view.version == 51 and view.messages[-1] == AIMessage(content="new")
    assert full_loads == [] and reads == [50]
    store.close()


def test_the_returned_list_is_the_callers_own(db_url: str) -> None:
    """Changing the list a load returned does not change the next load."""
    with open_store(db_url) as store:
        history = ChatHistory("s", store)
        history.add_messages([HumanMessage(content="a"), AIMessage(content="b")])
        mine = history.messages
        mine.append(HumanMessage(content="not saved"))
        mine.pop(0)
        assert history.messages == [HumanMessage(content="a"), AIMessage(content="b")]


def test_an_erasure_elsewhere_reaches_a_warm_cache(db_url: str) -> None:
    """A message erased through another store object is gone from the next cached load."""
    with open_store(db_url) as store, open_store(db_url) as other:
        history = ChatHistory("s", store)
        history.add_messages([HumanMessage(content="secret"), AIMessage(content="ok")])
        assert len(history.messages) == 2
        other.erase("s", versions=[1])
        assert history.messages == [AIMessage(content="ok")]
        assert history.load() == _uncached(store, SessionKey.coerce("s"))


def test_a_small_cache_evicts_but_stays_exact(db_url: str) -> None:
    """Beyond its message budget the cache drops the least recently used sessions only."""
    with open_store(db_url) as store:
        cache = HistoryCache(store, max_messages=5)
        for name in ("a", "b", "c"):
            store.append(name, [MessageAppended(message=HumanMessage(content=f"{name}{i}"))
                                for i in range(3)])
            assert cache.load(name) == store.load_history(name)
        assert len(cache) == 1  # 3 messages each, 5 at most: only the last one stays
        store.append("a", [MessageAppended(message=AIMessage(content="more"))])
        for name in ("a", "b", "c"):
            assert cache.load(name) == store.load_history(name)


def test_one_cache_per_store(db_url: str) -> None:
    """Histories of one store share a cache; another store object has its own."""
    with open_store(db_url) as store, open_store(db_url) as other:
        assert history_cache(store) is history_cache(store)
        assert history_cache(store) is not history_cache(other)


def test_async_loads_see_other_writers(db_url: str) -> None:
    """``aload`` and ``aget_messages`` agree with uncached loads after another store's writes."""
    with open_store(db_url) as store, open_store(db_url) as other:
        history = ChatHistory("s", store)

        async def scenario() -> None:
            await history.aadd_messages([HumanMessage(content="a")])
            assert (await history.aload()).messages == [HumanMessage(content="a")]
            ChatHistory("s", other).add_messages([AIMessage(content="b")])
            assert await history.aget_messages() == store.load_history("s")[1]
            ChatHistory("s", other).clear()
            assert await history.aload() == _uncached(store, SessionKey.coerce("s"))

        asyncio.run(scenario())


# -- several OS processes ------------------------------------------------------------------
KEYS = [SessionKey(user_id="u", conversation_id=str(i)) for i in range(3)]


def _writer(url: str, commands: Connection) -> None:
    """Carry out the operations the test sends, one at a time, acknowledging each."""
    store = open_store(url)
    try:
        while (command := commands.recv()) is not None:
            op, index, text = command
            history = ChatHistory(KEYS[index], store)
            if op == "append":
                history.add_messages([HumanMessage(content=text), AIMessage(content=text)])
            elif op == "clear":
                history.clear()
            elif op == "erase":
                stored = [r.version for r in store.read(KEYS[index])
                          if isinstance(r.event, MessageAppended)]
                if stored:
                    store.erase(KEYS[index], versions=[stored[int(text) % len(stored)]])
            elif op == "fork":
                history.fork(SessionKey(user_id="u", conversation_id=f"fork-{text}"))
            commands.send(op)
    finally:
        store.close()


@pytest.fixture(params=SHARED_BACKENDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL that several processes can open."""
    if request.param == "postgres":
        return postgres_schema_url(postgres_test_schema(tmp_path))
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_cached_loads_follow_writes_from_other_processes(shared_url: str) -> None:
    """Two writer processes append, clear, erase and fork; this process's warm cache is exact."""
    ctx = multiprocessing.get_context("fork")
    open_store(shared_url, create=True).close()  # the ledger exists before the processes start
    pipes, procs = [], []
    for _ in range(2):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_writer, args=(shared_url, theirs))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    rng = random.Random(16)
    forks: list[SessionKey] = []
    try:
        with open_store(shared_url) as store:
            for step in range(60):
                op = rng.choice(["append"] * 5 + ["clear", "erase", "fork"])
                index = rng.randrange(len(KEYS))
                pipe = pipes[step % 2]
                pipe.send((op, index, str(step)))
                assert pipe.recv() == op
                if op == "fork":
                    forks.append(SessionKey(user_id="u", conversation_id=f"fork-{step}"))
                for key in [*KEYS, *forks]:
                    assert ChatHistory(key, store).load() == _uncached(store, key), (step, op)
    finally:
        for pipe in pipes:
            pipe.send(None)
        for proc in procs:
            proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
