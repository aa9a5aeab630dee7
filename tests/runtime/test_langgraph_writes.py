"""Pending writes survive the put of their checkpoint, whichever reaches the log first.

LangGraph stores a task's writes from its background executor while the put of the checkpoint
they belong to may still be under way, so a ``CheckpointWritesSaved`` can precede the
``CheckpointSaved`` of the same id. Interrupts, a finished sibling's result and a failed node's
error live in those writes; each test compares with LangGraph's own savers.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from chatledger.eventstore import (
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    EventStore,
    SessionKey,
)
from chatledger.runtime.langgraph import ChatledgerSaver
from chatledger.runtime.langgraph._index import ThreadIndex

T: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
MODES = ["sync", "async"]

Outcome = dict[str, Any]


# -- the graphs ------------------------------------------------------------------------------
def interrupting(saver: BaseCheckpointSaver[Any], ran: dict[str, int]
                 ) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``ask`` interrupts for approval while ``other``, in the same superstep, finishes."""
    def ask(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [AIMessage(f"approved: {interrupt('approve?')}")]}

    def other(state: MessagesState) -> dict[str, list[AnyMessage]]:
        ran["other"] += 1  # a side effect, say an email sent
        return {"messages": [AIMessage("other done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_node("other", other)
    builder.add_edge(START, "ask")
    builder.add_edge(START, "other")
    return builder.compile(checkpointer=saver)


def failing(saver: BaseCheckpointSaver[Any], ran: dict[str, int]
            ) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``b`` raises until ``ran['fail']`` is 0, after ``a``, in the same superstep, finished."""
    a_done = threading.Event()

    def a(state: MessagesState) -> dict[str, list[AnyMessage]]:
        ran["a"] += 1
        a_done.set()
        return {"messages": [AIMessage("a done")]}

    def b(state: MessagesState) -> dict[str, list[AnyMessage]]:
        if ran["fail"]:
            # LangGraph stores a's write only if a's result is in before the run stops on
            # b's error, whatever the checkpointer (SqliteSaver too): let it land first
            assert a_done.wait(5)
            time.sleep(0.2)
            raise RuntimeError("transient")
        return {"messages": [AIMessage("b done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    return builder.compile(checkpointer=saver)


def run(mode: str, app: CompiledStateGraph[Any, Any, Any, Any], value: Any) -> Any:
    """``invoke`` or ``ainvoke`` the graph on thread ``t``."""
    if mode == "sync":
        return app.invoke(value, T)
    return asyncio.run(app.ainvoke(value, T))


def paused(mode: str, app: CompiledStateGraph[Any, Any, Any, Any],
           saver: BaseCheckpointSaver[Any]) -> Outcome:
    """What a user sees of a stopped thread: next nodes, interrupts, pending writes."""
    if mode == "sync":
        state, tup = app.get_state(T), saver.get_tuple(T)
    else:
        async def both() -> Any:
            return await app.aget_state(T), await saver.aget_tuple(T)
        state, tup = asyncio.run(both())
    assert tup is not None
    return {"next": sorted(state.next),
            "interrupts": [i.value for i in state.interrupts],
            "task_interrupts": sorted((t.name, [i.value for i in t.interrupts])
                                      for t in state.tasks),
            "pending": sorted(channel for _, channel, _ in tup.pending_writes)}


def contents(messages: list[AnyMessage]) -> list[Any]:
    """The messages' contents, in order."""
    return [m.content for m in messages]


def interrupt_outcome(mode: str, saver: BaseCheckpointSaver[Any],
                      cold: Callable[[], BaseCheckpointSaver[Any]] | None = None) -> Outcome:
    """Run to the interrupt, look (also through a cold saver), resume, count the reruns."""
    ran = {"other": 0}
    app = interrupting(saver, ran)
    run(mode, app, {"messages": [("user", "do it")]})
    seen = {"paused": paused(mode, app, saver)}
    if cold is not None:
        fresh = cold()
        seen["paused from a new saver"] = paused(mode, interrupting(fresh, ran), fresh)
    out = run(mode, app, Command(resume="yes"))
    return {**seen, "other ran": ran["other"], "messages": contents(out["messages"])}


def failure_outcome(mode: str, saver: BaseCheckpointSaver[Any],
                    cold: Callable[[], BaseCheckpointSaver[Any]] | None = None) -> Outcome:
    """Run into the failure, look (also through a cold saver), retry, count the reruns."""
    ran = {"a": 0, "fail": 1}
    app = failing(saver, ran)
    with pytest.raises(RuntimeError, match="transient"):
        run(mode, app, {"messages": [("user", "go")]})
    seen = {"paused": paused(mode, app, saver)}
    if cold is not None:
        fresh = cold()
        seen["paused from a new saver"] = paused(mode, failing(fresh, ran), fresh)
    ran["fail"] = 0
    out = run(mode, app, None)
    return {**seen, "a ran": ran["a"], "messages": contents(out["messages"])}


@pytest.fixture
def sqlite_saver() -> Iterator[SqliteSaver]:
    """LangGraph's own SqliteSaver, in memory."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


# -- real graphs, compared with LangGraph's savers -------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_an_interrupt_and_a_finished_sibling_are_kept(store: EventStore, mode: str) -> None:
    """After interrupt(): the interrupt is visible, the finished parallel node's write is
    pending, and on resume that node does not run again (as with InMemorySaver)."""
    expected = interrupt_outcome(mode, InMemorySaver())
    assert expected["paused"] == {
        "next": ["ask"], "interrupts": ["approve?"],
        "task_interrupts": [("ask", ["approve?"]), ("other", [])],
        "pending": ["__interrupt__", "messages"]}
    assert expected["other ran"] == 1
    got = interrupt_outcome(mode, ChatledgerSaver(store), cold=lambda: ChatledgerSaver(store))
    assert got == {**expected, "paused from a new saver": expected["paused"]}


def test_an_interrupt_matches_sqlite_saver(store: EventStore, sqlite_saver: SqliteSaver
                                           ) -> None:
    """The same interrupted run seen through SqliteSaver and through ChatledgerSaver."""
    expected = interrupt_outcome("sync", sqlite_saver)
    assert expected["paused"]["interrupts"] == ["approve?"] and expected["other ran"] == 1
    assert interrupt_outcome("sync", ChatledgerSaver(store)) == expected


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_node_keeps_its_siblings_write(store: EventStore, mode: str) -> None:
    """When one parallel node raises, the other's finished write and the error stay pending,
    and the retry does not run the finished node again (as with InMemorySaver)."""
    expected = failure_outcome(mode, InMemorySaver())
    assert expected["paused"]["pending"] == ["__error__", "messages"]
    assert expected["a ran"] == 1
    got = failure_outcome(mode, ChatledgerSaver(store), cold=lambda: ChatledgerSaver(store))
    assert got == {**expected, "paused from a new saver": expected["paused"]}


def test_a_failed_node_matches_sqlite_saver(store: EventStore, sqlite_saver: SqliteSaver
                                            ) -> None:
    """The same failed run seen through SqliteSaver and through ChatledgerSaver."""
    expected = failure_outcome("sync", sqlite_saver)
    assert expected["paused"]["pending"] == ["__error__", "messages"]
    assert failure_outcome("sync", ChatledgerSaver(store)) == expected


def test_a_copied_thread_keeps_the_interrupt(store: EventStore) -> None:
    """copy_thread replays the writes in log order: the copy is paused at the same interrupt
    with the finished sibling's write, and resumes without running it again."""
    saver, ran = ChatledgerSaver(store), {"other": 0}
    app = interrupting(saver, ran)
    app.invoke({"messages": [("user", "do it")]}, T)
    saver.copy_thread("t", "t2")
    t2: RunnableConfig = {"configurable": {"thread_id": "t2", "checkpoint_ns": ""}}
    state, tup = app.get_state(t2), saver.get_tuple(t2)
    assert [i.value for i in state.interrupts] == ["approve?"] and state.next == ("ask",)
    assert tup is not None
    assert sorted(c for _, c, _ in tup.pending_writes) == ["__interrupt__", "messages"]
    out = app.invoke(Command(resume="yes"), t2)
    assert ran["other"] == 1
    assert sorted(contents(out["messages"])) == ["approved: yes", "do it", "other done"]


# -- the saver's calls in the order that loses writes ----------------------------------------
def _pending(saver: BaseCheckpointSaver[Any], config: RunnableConfig) -> list[tuple[str, Any]]:
    tup = saver.get_tuple(config)
    assert tup is not None
    return sorted((channel, value) for _, channel, value in tup.pending_writes)


def _writes_then_puts(saver: BaseCheckpointSaver[Any], checkpoint: Checkpoint,
                      puts: int) -> RunnableConfig:
    """put_writes against a checkpoint, then ``puts`` puts of that same checkpoint id."""
    parent = saver.put(T, empty_checkpoint(), {"step": -1}, {})
    config: RunnableConfig = {"configurable": {**parent["configurable"],
                                               "checkpoint_id": checkpoint["id"]}}
    saver.put_writes(config, [("messages", "from task 1"), ("__interrupt__", "stop")], "task1")
    saver.put_writes(config, [("messages", "from task 2")], "task2")
    for _ in range(puts):
        saver.put(parent, checkpoint, {"step": 0}, {})
    return config


@pytest.mark.parametrize("puts", [1, 2])
def test_writes_before_the_put_and_a_re_put_keep_them(store: EventStore, puts: int,
                                                      sqlite_saver: SqliteSaver) -> None:
    """Writes logged before their checkpoint's put, and a second put of the same id, leave the
    writes pending, as SqliteSaver and InMemorySaver keep them; a new saver reads them too."""
    checkpoint = empty_checkpoint()
    references = [_pending(ref, _writes_then_puts(ref, checkpoint, puts))
                  for ref in (InMemorySaver(), sqlite_saver)]
    assert references[0] == references[1] == [
        ("__interrupt__", "stop"), ("messages", "from task 1"), ("messages", "from task 2")]
    config = _writes_then_puts(ChatledgerSaver(store), checkpoint, puts)
    assert _pending(ChatledgerSaver(store), config) == references[0]
    events = [type(r.event).__name__ for r in store.read(SessionKey(thread_id="t"))]
    assert events.count("CheckpointWritesSaved") == 2


# -- the index fold --------------------------------------------------------------------------
def _saved(cid: str) -> CheckpointSaved:
    return CheckpointSaved(checkpoint_id=cid, body_type="json", body=b"{}")


def _writes(cid: str, task: str, channel: str = "messages") -> CheckpointWritesSaved:
    return CheckpointWritesSaved(checkpoint_id=cid, task_id=task,
                                 writes=[(0, channel, "json", task.encode())])


def _folded(events: list[Any]) -> ThreadIndex:
    index = ThreadIndex()
    for version, event in enumerate(events, start=1):
        index.apply(version, event)
    return index


def test_index_keeps_writes_logged_before_the_put_in_any_order() -> None:
    """Every order of a checkpoint's put, its re-put and two tasks' writes folds to the same
    checkpoint with both writes pending."""
    events = [_saved("c1"), _saved("c1"), _writes("c1", "t1"), _writes("c1", "t2")]
    for order in itertools.permutations(events):
        index = _folded(list(order))
        saved = index.get("c1")
        assert saved is not None and saved.event.checkpoint_id == "c1"
        assert [(w.task_id, w.data) for w in index.pending_writes("c1")] == [
            ("t1", b"t1"), ("t2", b"t2")], order


def test_index_re_put_moves_the_checkpoint_and_keeps_its_writes() -> None:
    """A re-put stores the checkpoint at its new version; the writes keep theirs."""
    index = _folded([_writes("c1", "t1"), _saved("c1"), _writes("c2", "t2"), _saved("c1")])
    saved = index.get("c1")
    assert saved is not None and saved.version == 4
    assert [w.version for w in index.pending_writes("c1")] == [1]
    assert [w.task_id for w in index.pending_writes("c2")] == ["t2"]


def test_index_deleted_checkpoint_loses_its_writes_even_if_put_again() -> None:
    """prune and delete_for_runs drop a checkpoint's writes (as PostgresSaver deletes the
    rows); a later put of that id brings back only writes logged after the delete."""
    index = _folded([_writes("c1", "t1"), _saved("c1"),
                     CheckpointsDeleted(checkpoint_ids=["c1"]), _writes("c1", "t2"),
                     _saved("c1")])
    assert index.get("c1") is not None
    assert [w.task_id for w in index.pending_writes("c1")] == ["t2"]
