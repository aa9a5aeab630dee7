"""ChatledgerSaver under a real LangGraph graph: the thread's history is the graph's messages."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from chatledger.eventstore import (
    CheckpointSaved,
    EventStore,
    HistoryCleared,
    InvalidInputError,
    InvalidKeyError,
    SessionForked,
    SessionKey,
    open_store,
)
from chatledger.projections import ChatHistory
from chatledger.runtime.langchain import to_langchain_messages
from chatledger.runtime.langgraph import (
    ChatledgerSaver,
    CheckpointIntegrityError,
    ThreadDeletedError,
)

T1 = {"configurable": {"thread_id": "t1"}}


def _echo(state: MessagesState) -> dict[str, list[AnyMessage]]:
    return {"messages": [AIMessage(f"echo: {state['messages'][-1].content}")]}


def graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A one-node MessagesState graph that echoes the last message."""
    builder = StateGraph(MessagesState)
    builder.add_node("echo", _echo)
    builder.add_edge(START, "echo")
    return builder.compile(checkpointer=saver)


def history(store: EventStore, thread_id: str = "t1") -> list[Any]:
    """The thread's chatledger history, as LangChain messages."""
    return to_langchain_messages(ChatHistory(SessionKey(thread_id=thread_id), store).messages)


def test_history_is_the_graph_state(store: EventStore) -> None:
    """After every turn the thread's ChatHistory equals the graph state's messages."""
    app = graph(ChatledgerSaver(store))
    for turn in range(3):
        out = app.invoke({"messages": [HumanMessage(f"hi {turn}")]}, T1)
        assert history(store) == out["messages"]
        assert len(out["messages"]) == 2 * (turn + 1)
    assert store.verify().ok


def test_each_message_is_stored_once(store: EventStore) -> None:
    """Checkpoints carry only the messages they added, not the whole list each time."""
    app = graph(ChatledgerSaver(store))
    for turn in range(5):
        app.invoke({"messages": [HumanMessage(f"hi {turn}")]}, T1)
    saved = [r.event for r in store.read(SessionKey(thread_id="t1"))
             if isinstance(r.event, CheckpointSaved)]
    assert sum(len(e.messages) for e in saved) == 10
    assert all(b"echo: " not in e.body for e in saved)  # replies live in the history only
    assert sum(e.projected for e in saved) == len(saved) - 1  # the very first has no messages


def test_remove_message_keeps_earlier_versions(store: EventStore) -> None:
    """RemoveMessage empties it from the current history; as_of still has it."""
    app = graph(ChatledgerSaver(store))
    out = app.invoke({"messages": [HumanMessage("keep"), HumanMessage("drop")]}, T1)
    before = ChatHistory(SessionKey(thread_id="t1"), store).version
    app.update_state(T1, {"messages": [RemoveMessage(id=out["messages"][1].id)]})
    state = app.get_state(T1).values["messages"]
    assert [m.content for m in state] == ["keep", "echo: drop"]
    assert history(store) == state
    chat = ChatHistory(SessionKey(thread_id="t1"), store)
    assert [m.content for m in chat.as_of(version=before)] == ["keep", "drop", "echo: drop"]
    assert any(isinstance(r.event, HistoryCleared) for r in chat.events())


def test_a_new_process_continues_the_thread(tmp_path: Path) -> None:
    """A fresh saver on the same file reads the state back and continues it."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with open_store(url) as store:
        first = graph(ChatledgerSaver(store)).invoke({"messages": [HumanMessage("one")]}, T1)
    with open_store(url) as store:
        app = graph(ChatledgerSaver(store))
        assert app.get_state(T1).values["messages"] == first["messages"]
        out = app.invoke({"messages": [HumanMessage("two")]}, T1)
        assert [m.content for m in out["messages"]] == ["one", "echo: one", "two", "echo: two"]
        assert history(store) == out["messages"]
        assert len(list(app.get_state_history(T1))) == 6


def test_time_travel_forks_the_current_history(store: EventStore) -> None:
    """Resuming from an earlier checkpoint makes the history that checkpoint's messages."""
    app = graph(ChatledgerSaver(store))
    app.invoke({"messages": [HumanMessage("a")]}, T1)
    app.invoke({"messages": [HumanMessage("b")]}, T1)
    earlier = next(s for s in app.get_state_history(T1) if len(s.values.get("messages", [])) == 2)
    out = app.invoke({"messages": [HumanMessage("c")]}, earlier.config)
    assert [m.content for m in out["messages"]] == ["a", "echo: a", "c", "echo: c"]
    assert history(store) == out["messages"]


def test_history_from_a_checkpoint_lists_that_checkpoint_only(store: EventStore) -> None:
    """``list`` (and so ``get_state_history``) with a config naming a checkpoint yields that
    checkpoint alone, as LangGraph's own savers do; sync and async alike."""
    apps = {"ours": graph(ChatledgerSaver(store)), "theirs": graph(InMemorySaver())}
    seen = {}
    for name, app in apps.items():
        app.invoke({"messages": [HumanMessage("a")]}, T1)
        app.invoke({"messages": [HumanMessage("b")]}, T1)
        earlier = [s for s in app.get_state_history(T1)][2]
        picked = [s.config for s in app.get_state_history(earlier.config)]
        saver = app.checkpointer
        assert isinstance(saver, BaseCheckpointSaver)

        async def alist(saver: BaseCheckpointSaver[Any] = saver,
                        config: Any = earlier.config) -> list[Any]:
            return [t.config async for t in saver.alist(config)]
        seen[name] = (picked == [earlier.config], asyncio.run(alist()) == [earlier.config])
    assert seen["ours"] == seen["theirs"] == (True, True)


def test_a_message_the_history_cannot_hold_stays_in_the_checkpoint(store: EventStore) -> None:
    """A message whose values would not read back equal from the log (a datetime in
    additional_kwargs, non-text keys in an artifact) keeps the channel inside the checkpoint,
    as the README says, instead of failing the run; state matches InMemorySaver's, also
    through a new saver."""
    def stamped(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [AIMessage("ok", additional_kwargs={"at": datetime(2024, 1, 1)},
                                       response_metadata={"ids": {1: "x"}})]}

    def build(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
        builder = StateGraph(MessagesState)
        builder.add_node("stamped", stamped)
        builder.add_edge(START, "stamped")
        return builder.compile(checkpointer=saver)

    def shape(messages: list[Any]) -> list[Any]:  # ids are drawn afresh by add_messages
        return [(m.type, m.content, m.additional_kwargs, m.response_metadata) for m in messages]

    want = build(InMemorySaver()).invoke({"messages": [HumanMessage("hi")]}, T1)["messages"]
    got = build(ChatledgerSaver(store)).invoke({"messages": [HumanMessage("hi")]}, T1)
    assert shape(got["messages"]) == shape(want)
    assert build(ChatledgerSaver(store)).get_state(T1).values["messages"] == got["messages"]


def test_async_graph_runs(store: EventStore) -> None:
    """ainvoke and aget_state go through the async twins."""
    app = graph(ChatledgerSaver(store))

    async def run() -> list[Any]:
        await app.ainvoke({"messages": [HumanMessage("x")]}, T1)
        out = await app.ainvoke({"messages": [HumanMessage("y")]}, T1)
        assert (await app.aget_state(T1)).values["messages"] == out["messages"]
        return list(out["messages"])

    final = asyncio.run(run())
    assert history(store) == final


def test_delete_thread_erases_and_refuses_late_writes(store: EventStore) -> None:
    """delete_thread erases the content; a late write of a still-running graph is refused."""
    saver = ChatledgerSaver(store)
    app = graph(saver)
    app.invoke({"messages": [HumanMessage("secret")]}, T1)
    stale = saver.get_tuple(T1)
    assert stale is not None
    saver.delete_thread("t1")
    assert saver.get_tuple(T1) is None
    assert ChatHistory(SessionKey(thread_id="t1"), store).messages == []
    assert all("secret" not in str(r.event) for r in store.read(SessionKey(thread_id="t1")))
    assert store.verify().ok
    version = store.version(SessionKey(thread_id="t1"))
    with pytest.raises(ThreadDeletedError):
        saver.put(stale.config, stale.checkpoint, stale.metadata, {})
    with pytest.raises(ThreadDeletedError):
        ChatledgerSaver(store).put_writes(stale.config, [("messages", [])], "task")
    late_ns = {"configurable": {"thread_id": "t1", "checkpoint_ns": "sub:1"}}
    with pytest.raises(ThreadDeletedError):
        saver.put(late_ns, stale.checkpoint, stale.metadata, {})
    assert store.version(SessionKey(thread_id="t1")) == version
    assert store.version(SessionKey(thread_id="t1", checkpoint_ns="sub:1")) == 0
    with pytest.raises(ThreadDeletedError):
        app.invoke({"messages": [HumanMessage("again")]}, T1)


def test_tampered_checkpoint_is_not_deserialised(tmp_path: Path) -> None:
    """A checkpoint row altered on disk raises before LangGraph's serializer sees it."""
    path = tmp_path / "g.db"
    with open_store(f"sqlite:///{path}") as store:
        graph(ChatledgerSaver(store)).invoke({"messages": [HumanMessage("hi")]}, T1)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET data = replace(data, '\"step\":1', '\"step\":7') "
                 "WHERE type = 'checkpoint_saved'")
    conn.close()
    calls: list[str] = []
    with open_store(f"sqlite:///{path}") as store:
        saver = ChatledgerSaver(store)
        loads = saver.serde.loads_typed
        saver.serde.loads_typed = lambda data: calls.append(data[0]) or loads(data)  # type: ignore[method-assign]
        with pytest.raises(CheckpointIntegrityError, match="failed verification"):
            saver.get_tuple(T1)
    assert calls == []


def test_copy_thread_is_a_fork_with_lineage(store: EventStore) -> None:
    """The copy names its source and replays to the same state and history."""
    saver = ChatledgerSaver(store)
    app = graph(saver)
    out = app.invoke({"messages": [HumanMessage("hi")]}, T1)
    saver.copy_thread("t1", "t2")
    first = store.read(SessionKey(thread_id="t2"))[0].event
    assert isinstance(first, SessionForked) and first.parent == {"thread_id": "t1"}
    t2 = {"configurable": {"thread_id": "t2"}}
    assert app.get_state(t2).values["messages"] == out["messages"]
    assert history(store, "t2") == out["messages"]
    with pytest.raises(InvalidInputError, match="already has events"):
        saver.copy_thread("t1", "t2")


def test_delta_channel_history_matches_the_reference_walk(store: EventStore) -> None:
    """The one-read override returns what LangGraph's default parent walk returns."""
    saver = ChatledgerSaver(store)
    app = graph(saver)
    for turn in range(2):
        app.invoke({"messages": [HumanMessage(f"hi {turn}")]}, T1)
    for state in app.get_state_history(T1):
        mine = saver.get_delta_channel_history(config=state.config, channels=["messages"])
        reference = BaseCheckpointSaver.get_delta_channel_history(
            saver, config=state.config, channels=["messages"])
        assert mine == reference


def test_bad_input_names_the_problem(store: EventStore) -> None:
    """No thread id, an unknown prune strategy, unstorable metadata: clear errors, no writes."""
    saver = ChatledgerSaver(store)
    with pytest.raises(InvalidKeyError, match="thread_id"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(InvalidInputError, match="strategy"):
        saver.prune(["t1"], strategy="newest")
    app = graph(saver)
    app.invoke({"messages": [HumanMessage("hi")]}, T1)
    tup = saver.get_tuple(T1)
    assert tup is not None
    before = store.version(SessionKey(thread_id="t1"))
    with pytest.raises(InvalidInputError, match="JSON"):
        saver.put(T1, tup.checkpoint, {**tup.metadata, "bad": object()}, {})  # type: ignore[typeddict-unknown-key]
    assert store.version(SessionKey(thread_id="t1")) == before
    with pytest.raises(InvalidInputError, match="EventStore or a URL"):
        ChatledgerSaver(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_threads must be an int of at least 0"):
        ChatledgerSaver(store, max_threads=-1)


def test_two_processes_take_turns_on_one_thread(store: EventStore) -> None:
    """Two savers on one store (as two app servers) alternate turns; neither loses a message."""
    first, second = graph(ChatledgerSaver(store)), graph(ChatledgerSaver(store))
    for turn in range(4):
        out = (first if turn % 2 == 0 else second).invoke(
            {"messages": [HumanMessage(f"turn {turn}")]}, T1)
    assert [m.content for m in out["messages"] if isinstance(m, HumanMessage)] == [
        f"turn {t}" for t in range(4)]
    assert history(store) == out["messages"]
    assert first.get_state(T1).values["messages"] == out["messages"]
    assert store.verify().ok


def test_deleting_the_newest_run_rolls_the_history_back(store: EventStore) -> None:
    """delete_for_runs of the last run: state and history fall back to the run before."""
    saver = ChatledgerSaver(store)
    app = graph(saver)
    first = app.invoke({"messages": [HumanMessage("one")]}, {**T1, "metadata": {"run_id": "r1"}})
    app.invoke({"messages": [HumanMessage("two")]}, {**T1, "metadata": {"run_id": "r2"}})
    last = saver.get_tuple(T1)
    assert last is not None and last.metadata["run_id"] == "r2"
    saver.delete_for_runs(["r2"])
    assert app.get_state(T1).values["messages"] == first["messages"]
    assert history(store) == first["messages"]
    assert len(ChatHistory(SessionKey(thread_id="t1"), store).as_of(
        version=store.version(SessionKey(thread_id="t1")) - 3)) == 4  # earlier state kept


def test_prune_keeps_the_newest_state_or_none(store: EventStore) -> None:
    """keep_latest leaves one checkpoint and the same state; delete leaves no state at all."""
    saver = ChatledgerSaver(store)
    app = graph(saver)
    app.invoke({"messages": [HumanMessage("one")]}, T1)
    out = app.invoke({"messages": [HumanMessage("two")]}, T1)
    saver.prune(["t1"])
    assert len(list(saver.list(T1))) == 1
    assert app.get_state(T1).values["messages"] == out["messages"] == history(store)
    saver.prune(["t1"], strategy="delete")
    assert list(saver.list(T1)) == [] and history(store) == []
    assert len(list(saver.list(None))) == 0


def test_a_subgraph_has_its_own_stream_and_dies_with_its_thread(store: EventStore) -> None:
    """A subgraph's checkpoints live in the (thread_id, checkpoint_ns) stream; delete erases it."""
    inner = StateGraph(MessagesState)
    inner.add_node("echo", _echo)
    inner.add_edge(START, "echo")
    outer = StateGraph(MessagesState)
    outer.add_node("inner", inner.compile(checkpointer=True))
    outer.add_edge(START, "inner")
    saver = ChatledgerSaver(store)
    app = outer.compile(checkpointer=saver)
    out = app.invoke({"messages": [HumanMessage("deep")]}, T1)
    assert [m.content for m in out["messages"]] == ["deep", "echo: deep"]
    streams = [s.key.parts for s in store.sessions(thread_id="t1")]
    assert {"thread_id": "t1"} in streams and any("checkpoint_ns" in p for p in streams)
    assert history(store) == out["messages"]
    saver.delete_thread("t1")
    assert all(ChatHistory(SessionKey(**p), store).messages == [] for p in streams)
    assert store.verify().ok


def test_parallel_branches_write_concurrently(store: EventStore) -> None:
    """Two nodes of one superstep write from LangGraph's worker threads; both land once."""
    builder = StateGraph(MessagesState)
    builder.add_node("left", lambda s: {"messages": [AIMessage("left", id="l")]})
    builder.add_node("right", lambda s: {"messages": [AIMessage("right", id="r")]})
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    app = builder.compile(checkpointer=ChatledgerSaver(store))
    for turn in range(3):
        out = app.invoke({"messages": [HumanMessage(f"go {turn}")]},
                         {"configurable": {"thread_id": f"p{turn}"}})
        assert sorted(m.content for m in out["messages"][1:]) == ["left", "right"]
        assert history(store, f"p{turn}") == out["messages"]
    assert store.verify().ok


def test_from_conn_string_ports_code_written_for_langgraph_savers(tmp_path: Path) -> None:
    """``with ChatledgerSaver.from_conn_string(url) as cp`` and ``cp.setup()`` work as theirs do."""
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    with ChatledgerSaver.from_conn_string(url) as checkpointer:
        checkpointer.setup()
        out = graph(checkpointer).invoke({"messages": [HumanMessage("hi")]}, T1)
    with open_store(url) as store:
        assert history(store) == out["messages"]


@pytest.mark.postgres
def test_setup_creates_a_missing_postgres_schema_as_langgraph_savers_do(tmp_path: Path) -> None:
    """A saver on ``?schema=`` naming a schema that does not exist: the first invoke says the
    schema does not exist (a typo stays visible) and writes nothing; after ``setup()``, as
    code written for PostgresSaver calls it, the graph runs."""
    from chatledger.eventstore import NotFoundError, open_store
    from tests.pgsupport import postgres_schema_url, postgres_test_schema

    url = postgres_schema_url(postgres_test_schema(tmp_path))
    store = open_store(url)
    try:
        saver = ChatledgerSaver(store)
        with pytest.raises(NotFoundError, match="does not exist"):
            graph(saver).invoke({"messages": [HumanMessage("hi")]}, T1)
        saver.setup()
        saver.setup()  # twice is harmless
        out = graph(saver).invoke({"messages": [HumanMessage("hi")]}, T1)
        assert [m.content for m in out["messages"]] == ["hi", "echo: hi"]
        assert history(store) == out["messages"]
    finally:
        store.close()


def test_setup_on_a_read_only_store_refuses(tmp_path: Path) -> None:
    """``setup()`` on a store opened read-only raises and creates nothing."""
    from chatledger.eventstore import StoreError, open_store

    path = tmp_path / "ledger.db"
    open_store(f"sqlite:///{path}", create=True).close()
    store = open_store(f"sqlite:///{path}", readonly=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            ChatledgerSaver(store).setup()
    finally:
        store.close()
