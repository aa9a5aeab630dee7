"""RunnableWithMessageHistory: what we fix compared with LangChain (reference section 1.11)."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    ConcurrencyError,
    EventStore,
    HumanMessage,
    InvalidInputError,
    Message,
    MessageAppended,
    RunRecorded,
    StoreError,
    open_store,
)
from chatledger.projections import ChatHistory, recorded_turns
from chatledger.runtime import RunnableLambda, RunnableParallel, RunnableWithMessageHistory
from chatledger.runtime.models import FakeChatModel
from tests.pgsupport import at_once


@pytest.fixture
def ledger(db_url: str) -> Iterator[EventStore]:
    """A store on a SQLite file in tmp_path."""
    store = open_store(db_url)
    yield store
    store.close()


def _runs(store: EventStore, session: str) -> list[RunRecorded]:
    return [r.event for r in store.read(session) if isinstance(r.event, RunRecorded)]


def _texts(store: EventStore, session: str) -> list[str]:
    return [m.text for m in ChatHistory(session, store).messages]


def _factory(store: EventStore) -> Any:
    def get_session_history(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, store)

    return get_session_history


# -- a failed save raises --------------------------------------------------------------------

def test_failed_save_raises_instead_of_being_swallowed() -> None:
    """A history whose add_messages fails makes invoke raise that error."""

    class DownHistory:
        messages: list[Message] = []

        def add_messages(self, messages: list[Message]) -> None:
            raise OSError("db down")

    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda session_id: DownHistory())
    with pytest.raises(OSError, match="db down"):
        chain.invoke("hi", {"session_id": "s"})


def test_failed_store_append_raises_and_notes_the_failed_record(ledger: EventStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """When the log cannot be written, invoke raises the store error and says the record failed."""

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("disk full")

    monkeypatch.setattr(ledger, "append", down)
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), _factory(ledger))
    with pytest.raises(StoreError, match="disk full") as info:
        chain.invoke("hi", {"session_id": "s"})
    assert any("recording the run as error also failed" in n for n in info.value.__notes__)


# -- a failed run: no half turn, but a record ------------------------------------------------

def test_failed_run_saves_no_half_turn_but_records_the_error(ledger: EventStore) -> None:
    """A runnable that raises leaves no message behind, only a RunRecorded with the error."""
    chain = RunnableWithMessageHistory(FakeChatModel([RuntimeError("model exploded")]),
                                       _factory(ledger))
    with pytest.raises(RuntimeError, match="model exploded"):
        chain.invoke("hi", {"run_id": "11111111-1111-4111-8111-111111111111", "session_id": "s"})
    records = ledger.read("s")
    assert not any(isinstance(r.event, MessageAppended) for r in records)
    [run] = _runs(ledger, "s")
    assert run.status == "error"
    assert run.error == "RuntimeError: model exploded"
    assert run.input == [HumanMessage("hi")]
    assert run.output == []
    assert run.model == "fake"
    assert run.run_id == "11111111-1111-4111-8111-111111111111"
    assert ChatHistory("s", ledger).messages == []


def test_non_message_in_output_list_raises(ledger: EventStore) -> None:
    """An output list with a non-message raises InvalidInputError; the turn is not saved."""
    chain = RunnableWithMessageHistory(RunnableLambda(lambda _: [AIMessage("ok"), "notamsg"]),
                                       _factory(ledger))
    with pytest.raises(InvalidInputError, match="output item 1 is a str"):
        chain.invoke("hi", {"session_id": "s"})
    assert ChatHistory("s", ledger).messages == []
    assert [r.status for r in _runs(ledger, "s")] == ["error"]


def test_successful_turn_records_run_with_version_model_and_meta(ledger: EventStore) -> None:
    """Each turn's RunRecorded and append meta carry the run id and the version it read."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r1", "r2"]), _factory(ledger))
    chain.invoke("one", {"session_id": "s"})
    chain.invoke("two", {"session_id": "s"})
    runs = _runs(ledger, "s")
    # each turn is input, output, its run and its one model call
    assert [(r.status, r.history_version, r.model) for r in runs] == [("ok", 0, "fake"),
                                                                     ("ok", 4, "fake")]
    # the run names its messages by version instead of holding copies: each is stored once
    assert (runs[1].input_versions, runs[1].output_versions) == ([5], [6])
    assert (runs[1].input, runs[1].output) == ([], [])
    turns = recorded_turns(ledger.read("s"))
    assert turns[1].input == [HumanMessage("two")]
    assert [m.text for m in turns[1].output] == ["r2"]
    assert turns[1].complete
    metas = [r.meta for r in ledger.read("s")]
    assert metas[4]["history_version"] == 4
    assert metas[4]["run_id"] == runs[1].run_id


# -- streams ---------------------------------------------------------------------------------

def test_streamed_model_saves_one_whole_ai_message(ledger: EventStore) -> None:
    """A streamed chat model's chunks are saved as one AIMessage, never an AIMessageChunk."""
    chain = RunnableWithMessageHistory(FakeChatModel(["one two three"]), _factory(ledger))
    chunks = list(chain.stream("hi", {"session_id": "s"}))
    assert len(chunks) == 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    stored = ChatHistory("s", ledger).messages
    assert [type(m) for m in stored] == [HumanMessage, AIMessage]
    assert stored[1].content == "one two three"
    assert stored[1].response_metadata["finish_reason"] == "stop"


def test_streamed_strings_and_dicts_save_one_message(ledger: EventStore) -> None:
    """String chunks join into one AIMessage; dict chunks merge per key before saving."""

    def words(_: Any) -> Iterator[str]:
        yield from ("a", "b", "c")

    chain = RunnableWithMessageHistory(RunnableLambda(words), _factory(ledger))
    assert list(chain.stream("x", {"session_id": "s"})) == ["a", "b", "c"]
    assert ChatHistory("s", ledger).messages[-1] == AIMessage("abc")
    parallel = RunnableWithMessageHistory(RunnableParallel({"output_message": FakeChatModel(["p q"])}),
                                          _factory(ledger), output_messages_key="output_message")
    list(parallel.stream("y", {"session_id": "t"}))
    assert type(ChatHistory("t", ledger).messages[-1]) is AIMessage
    assert ChatHistory("t", ledger).messages[-1].content == "p q"


def test_stream_closed_early_records_partial_output_as_cancelled(ledger: EventStore) -> None:
    """Closing a stream after one chunk records a cancelled run with that chunk, and no turn."""
    chain = RunnableWithMessageHistory(FakeChatModel(["first second third"]), _factory(ledger))
    stream = chain.stream("hi", {"session_id": "s"})
    assert next(stream).content == "first "
    stream.close()
    assert ChatHistory("s", ledger).messages == []
    [run] = _runs(ledger, "s")
    assert run.status == "cancelled"
    assert [type(m) for m in run.output] == [AIMessage]
    assert run.output[0].content == "first "
    assert run.input == [HumanMessage("hi")]


def test_astream_closed_early_records_partial_output_as_cancelled(ledger: EventStore) -> None:
    """Closing an async stream early records the partial output as a cancelled run."""
    chain = RunnableWithMessageHistory(FakeChatModel(["alpha beta gamma"]), _factory(ledger))

    async def run() -> None:
        async with aclosing(chain.astream("hi", {"session_id": "s"})) as stream:
            async for _ in stream:
                break

    asyncio.run(run())
    assert ChatHistory("s", ledger).messages == []
    [record] = _runs(ledger, "s")
    assert (record.status, record.output) == ("cancelled", [AIMessage("alpha ", id=record.output[0].id)])


def test_astream_consumed_saves_one_message(ledger: EventStore) -> None:
    """A fully consumed async stream saves the turn once, as whole messages."""
    chain = RunnableWithMessageHistory(FakeChatModel(["x y"]), _factory(ledger))

    async def run() -> list[str]:
        return [c.text async for c in chain.astream("hi", {"session_id": "s"})]

    assert asyncio.run(run()) == ["x ", "y"]
    assert [type(m) for m in ChatHistory("s", ledger).messages] == [HumanMessage, AIMessage]


def test_stream_that_fails_records_error_with_partial_output(ledger: EventStore) -> None:
    """A stream that raises midway records an error run with what it produced, and no turn."""

    def flaky(_: Any) -> Iterator[str]:
        yield "part"
        raise RuntimeError("stream broke")

    chain = RunnableWithMessageHistory(RunnableLambda(flaky), _factory(ledger))
    with pytest.raises(RuntimeError, match="stream broke"):
        list(chain.stream("hi", {"session_id": "s"}))
    [run] = _runs(ledger, "s")
    assert (run.status, run.output, run.error) == ("error", [AIMessage("part")],
                                                   "RuntimeError: stream broke")


# -- concurrency and reads -------------------------------------------------------------------

def _racing(barrier: threading.Barrier) -> RunnableLambda:
    """A runnable that returns only once both racing turns have loaded their history."""

    def run(messages: list[Message]) -> str:
        barrier.wait()
        return f"saw {len(messages)}"

    return RunnableLambda(run)


def test_concurrent_turns_on_one_session_keep_both_user_messages(ledger: EventStore) -> None:
    """Two turns of one session in a batch both save their user message and reply."""
    ChatHistory("s", ledger).add_messages([HumanMessage("h0"), AIMessage("a0")])
    chain = RunnableWithMessageHistory(_racing(threading.Barrier(2, timeout=10)), _factory(ledger))
    out = chain.batch(["first", "second"], {"session_id": "s"})
    assert out == ["saw 3", "saw 3"]
    texts = _texts(ledger, "s")
    assert texts[:2] == ["h0", "a0"]
    assert sorted(texts[2:]) == sorted(["first", "saw 3", "second", "saw 3"])
    assert [r.history_version for r in _runs(ledger, "s")] == [2, 2]


def _check_every_turn_landed(store: EventStore, n: int) -> None:
    texts = _texts(store, "s")
    assert sorted(texts) == sorted([f"q{i}" for i in range(n)] + [f"r:q{i}" for i in range(n)])
    runs = _runs(store, "s")
    assert len(runs) == n and {r.status for r in runs} == {"ok"}
    assert {r.history_version for r in runs} == {0}  # every turn read the empty session


def test_many_turns_at_once_on_one_session_all_land(store: EventStore) -> None:
    """32 turns in threads, all of which read the empty session, all save (default "merge"), on every backend."""
    n = 32
    loaded = threading.Barrier(n, timeout=30)

    def reply(messages: list[Message]) -> str:
        loaded.wait()
        return f"r:{messages[-1].text}"

    chain = RunnableWithMessageHistory(RunnableLambda(reply), _factory(store))
    errors = at_once(lambda i: chain.invoke(f"q{i}", {"session_id": "s"}), n)
    assert errors == []
    _check_every_turn_landed(store, n)


def test_many_async_turns_at_once_on_one_session_all_land(store: EventStore) -> None:
    """32 ainvoke calls gathered on one session all save (default "merge")."""
    n = 32

    async def reply(messages: list[Message]) -> str:
        await asyncio.sleep(0.05)
        return f"r:{messages[-1].text}"

    chain = RunnableWithMessageHistory(RunnableLambda(reply), _factory(store))

    async def run() -> list[Any]:
        return await asyncio.gather(*(chain.ainvoke(f"q{i}", {"session_id": "s"})
                                      for i in range(n)), return_exceptions=True)

    assert [o for o in asyncio.run(run()) if isinstance(o, BaseException)] == []
    _check_every_turn_landed(store, n)


def test_langchain_loses_a_user_message_in_the_same_race() -> None:
    """Contrast: LangChain's own wrapper drops the slower turn's user message in this race."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.messages import AIMessage as LCAIMessage
    from langchain_core.messages import HumanMessage as LCHumanMessage
    from langchain_core.runnables import RunnableLambda as LCRunnableLambda
    from langchain_core.runnables.history import RunnableWithMessageHistory as LCWrapper

    saved = threading.Event()
    both_loaded = threading.Barrier(2, timeout=10)

    class SignallingHistory(InMemoryChatMessageHistory):
        def add_messages(self, messages: Any) -> None:
            super().add_messages(messages)
            saved.set()

    history = SignallingHistory(messages=[LCHumanMessage("h0"), LCAIMessage("a0")])

    def run(messages: list[Any]) -> str:
        both_loaded.wait()
        if messages[-1].content == "first":
            saved.wait(10)  # "first" finishes after "second" is saved
        return f"saw {len(messages)}"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LangChain deprecates its own wrapper
        chain = LCWrapper(LCRunnableLambda(run), lambda session_id: history)
    chain.batch(["first", "second"], {"configurable": {"session_id": "s"}})
    contents = [m.content for m in history.messages]
    assert "second" in contents
    assert "first" not in contents


def test_on_conflict_raise_rejects_the_losing_turn(ledger: EventStore) -> None:
    """With on_conflict="raise" the second of two racing turns raises ConcurrencyError."""
    chain = RunnableWithMessageHistory(_racing(threading.Barrier(2, timeout=10)), _factory(ledger),
                                       on_conflict="raise")
    out = chain.batch(["first", "second"], {"session_id": "s"}, return_exceptions=True)
    errors = [o for o in out if isinstance(o, Exception)]
    assert len(errors) == 1
    assert isinstance(errors[0], ConcurrencyError)
    assert len(ChatHistory("s", ledger).messages) == 2
    assert sorted(r.status for r in _runs(ledger, "s")) == ["error", "ok"]


def test_on_conflict_raise_allows_sequential_turns(ledger: EventStore) -> None:
    """Strict mode does not get in the way of turns that do not overlap."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), _factory(ledger), on_conflict="raise")
    chain.invoke("a", {"session_id": "s"})
    chain.invoke("b", {"session_id": "s"})
    assert _texts(ledger, "s") == ["a", "r", "b", "r"]


def test_bad_on_conflict_value_raises() -> None:
    """on_conflict accepts only "merge" or "raise"."""
    with pytest.raises(InvalidInputError, match="on_conflict"):
        RunnableWithMessageHistory(FakeChatModel(["r"]), lambda: None, on_conflict="ignore")  # type: ignore[arg-type]


def test_history_is_read_once_per_turn(ledger: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn loads the session once, with or without a history key."""
    loads: list[Any] = []
    original = ledger.load_history
    monkeypatch.setattr(ledger, "load_history", lambda key: loads.append(key) or original(key))
    RunnableWithMessageHistory(FakeChatModel(["r"]), _factory(ledger)).invoke("a", {"session_id": "s"})
    assert len(loads) == 1


# -- async factories and the event loop ------------------------------------------------------

def test_async_factory_works_on_both_paths(ledger: EventStore) -> None:
    """``async def get_session_history`` is awaited by ainvoke and run to completion by invoke."""

    async def get_session_history(session_id: str) -> ChatHistory:
        await asyncio.sleep(0)
        return ChatHistory(session_id, ledger)

    chain = RunnableWithMessageHistory(FakeChatModel(["r1", "r2"]), get_session_history)
    chain.invoke("sync", {"session_id": "s"})
    asyncio.run(chain.ainvoke("async", {"session_id": "s"}))
    assert _texts(ledger, "s") == ["sync", "r1", "async", "r2"]


def test_sync_invoke_with_async_factory_inside_a_running_loop(ledger: EventStore) -> None:
    """A sync invoke called from a coroutine still resolves an async factory."""

    async def get_session_history(session_id: str) -> ChatHistory:
        return ChatHistory(session_id, ledger)

    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), get_session_history)

    async def main() -> Any:
        return chain.invoke("inside", {"session_id": "s"})

    assert asyncio.run(main()).content == "r"
    assert _texts(ledger, "s") == ["inside", "r"]


def _forbid_on_loop(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store's blocking methods fail when called from a thread running an event loop."""
    for name in ("append", "load_history", "read", "version"):
        original = getattr(store, name)

        def guarded(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return _original(*args, **kwargs)
            raise AssertionError(f"blocking {_name} called on the event loop")

        monkeypatch.setattr(store, name, guarded)


def test_ainvoke_never_blocks_the_loop_with_sync_io(ledger: EventStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On the async path every store call runs off the event loop."""
    _forbid_on_loop(ledger, monkeypatch)
    chain = RunnableWithMessageHistory(FakeChatModel(["r", RuntimeError("x")]), _factory(ledger))

    async def run() -> None:
        await chain.ainvoke("a", {"session_id": "s"})
        with pytest.raises(RuntimeError):
            await chain.ainvoke("b", {"session_id": "s"})
        async for _ in chain.astream("c", {"session_id": "s"}):
            pass

    asyncio.run(run())
    assert [r.status for r in _runs(ledger, "s")] == ["ok", "error", "ok"]


def test_ainvoke_uses_the_async_twins_of_a_user_history() -> None:
    """A user history whose sync methods raise still works through ainvoke."""

    class AsyncOnly:
        def __init__(self) -> None:
            self.stored: list[Message] = []

        @property
        def messages(self) -> list[Message]:
            raise AssertionError("sync read on the async path")

        def add_messages(self, messages: list[Message]) -> None:
            raise AssertionError("sync write on the async path")

        async def aget_messages(self) -> list[Message]:
            return list(self.stored)

        async def aadd_messages(self, messages: list[Message]) -> None:
            self.stored.extend(messages)

    history = AsyncOnly()
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda session_id: history)
    asyncio.run(chain.ainvoke("hi", {"session_id": "s"}))
    asyncio.run(chain.ainvoke("again", {"session_id": "s"}))
    assert [m.text for m in history.stored] == ["hi", "r", "again", "r"]


def test_cancelled_ainvoke_records_a_cancelled_run(ledger: EventStore) -> None:
    """Cancelling an ainvoke mid-run records a cancelled run and saves no turn."""
    started = asyncio.Event()

    async def slow(_: Any) -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    chain = RunnableWithMessageHistory(RunnableLambda(slow), _factory(ledger))

    async def run() -> None:
        task = asyncio.create_task(chain.ainvoke("hi", {"session_id": "s"}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert ChatHistory("s", ledger).messages == []
    assert [r.status for r in _runs(ledger, "s")] == ["cancelled"]


def test_factory_returning_a_non_history_raises() -> None:
    """A factory returning something without messages/add_messages raises InvalidInputError."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda session_id: "nope")
    with pytest.raises(InvalidInputError, match="str"):
        chain.invoke("hi", {"session_id": "s"})


