"""A turn records its chain input and every model call made inside it, in its one append."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    MessageRef,
    ModelCalled,
    RunRecorded,
    SystemMessage,
    open_store,
)
from chatledger.projections import ChatHistory, recorded_turns, resolve_call
from chatledger.runtime import (
    ChatPromptTemplate,
    MessagesPlaceholder,
    RunnableLambda,
    RunnablePassthrough,
    RunnableWithMessageHistory,
)
from chatledger.runtime.models import FakeChatModel, OfflineChatModel


@pytest.fixture
def ledger(db_url: str) -> Iterator[EventStore]:
    """A store on a SQLite file in tmp_path."""
    store = open_store(db_url)
    yield store
    store.close()


def _prompt_chain(ledger: EventStore, model: Any = None) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You speak {language}."),
        MessagesPlaceholder(variable_name="history"),
        ("human", "{input}"),
    ])
    return RunnableWithMessageHistory(
        prompt | (model or OfflineChatModel()), lambda session_id: ChatHistory(session_id, ledger),
        input_messages_key="input", history_messages_key="history")


def _calls(ledger: EventStore, session: str) -> list[ModelCalled]:
    return [r.event for r in ledger.read(session) if isinstance(r.event, ModelCalled)]


CFG = {"configurable": {"session_id": "s"}}


def test_dict_turn_records_chain_input_and_the_rendered_request(ledger: EventStore) -> None:
    """The run keeps every input variable; the call keeps the exact prompt the model saw."""
    chain = _prompt_chain(ledger)
    chain.invoke({"language": "italian", "input": "hi im bob!"}, CFG)
    chain.invoke({"language": "italian", "input": "whats my name?"}, CFG)
    turns = recorded_turns(ledger.read("s"))
    assert turns[1].run.chain_input == {"language": "italian", "input": {"$input": "text"}}
    assert turns[1].run.keys == {"input": "input", "history": "history"}
    [call] = turns[1].calls
    # the system prompt is inline; history and input are references, stored once
    assert [type(p).__name__ for p in call.request] == ["SystemMessage", "MessageRef",
                                                       "MessageRef"]
    _, history = ledger.load_history_at("s", version=turns[1].run.history_version)
    request, response, complete = resolve_call(call, history, turns[1])
    assert complete
    assert request == [SystemMessage("You speak italian."), HumanMessage("hi im bob!"),
                       turns[0].output[0], HumanMessage("whats my name?")]
    assert response == turns[1].output[0]
    assert call.provider == "chatledger" and call.model == "offline"
    assert call.finish_reason == "stop" and call.response_id == turns[1].output[0].id
    assert call.usage is not None and call.usage["output_tokens"] > 0
    # model calls are no history messages
    assert len(ChatHistory("s", ledger).messages) == 4


def test_every_call_style_is_recorded(ledger: EventStore) -> None:
    """invoke, stream, ainvoke, astream and batch each record one call, in the turn's append."""
    chain = RunnableWithMessageHistory(FakeChatModel(["a", "b c", "d", "e f", "g"]),
                                       lambda session_id: ChatHistory(session_id, ledger))
    chain.invoke("1", CFG)
    list(chain.stream("2", CFG))
    asyncio.run(chain.ainvoke("3", CFG))

    async def consume() -> None:
        async for _ in chain.astream("4", CFG):
            pass

    asyncio.run(consume())
    chain.batch(["5"], [CFG])
    turns = recorded_turns(ledger.read("s"))
    assert [[c.stream for c in t.calls] for t in turns] == [[False], [True], [False], [True],
                                                           [False]]
    for turn in turns:
        [call] = turn.calls
        positions = {r.position for r in ledger.read("s") if r.meta["run_id"] == turn.run.run_id}
        assert len(positions) == 4  # input, output, run, call: one append
        assert call.response == MessageRef(source="output", start=0, stop=1)


def test_several_calls_anywhere_in_a_composition(ledger: EventStore) -> None:
    """Two models inside a composition give two calls, in order, each with its own request."""
    drafter = FakeChatModel(["draft"], model_name="drafter")
    critic = FakeChatModel(["final"], model_name="critic")
    pipeline = drafter | RunnableLambda(lambda m: [HumanMessage(f"improve: {m.content}")]) | critic
    chain = RunnableWithMessageHistory(pipeline, lambda session_id: ChatHistory(session_id, ledger))
    chain.invoke("topic", CFG)
    [turn] = recorded_turns(ledger.read("s"))
    assert [(c.index, c.model) for c in turn.calls] == [(0, "drafter"), (1, "critic")]
    first, second = (resolve_call(c, [], turn) for c in turn.calls)
    assert first[0] == [HumanMessage("topic")] and first[1] is not None
    assert first[1].content == "draft"
    assert second[0] == [HumanMessage("improve: draft")]
    assert second[1] == turn.output[0]


def test_run_names_the_model_called_inside_a_lambda(ledger: EventStore) -> None:
    """A model the composition does not show (called inside a lambda) still names the run."""
    model = OfflineChatModel()
    chain = RunnableWithMessageHistory(RunnableLambda(lambda messages: model.invoke(messages)),
                                       lambda session_id: ChatHistory(session_id, ledger))
    chain.invoke([HumanMessage("hi")], CFG)
    [turn] = recorded_turns(ledger.read("s"))
    assert [c.model for c in turn.calls] == ["offline"]
    assert turn.run.model == "offline"


def test_run_names_the_last_model_called_when_the_composition_shows_none(
        ledger: EventStore) -> None:
    """With several hidden models, the run names the last one called; with none, no model."""
    drafter = FakeChatModel(["draft"], model_name="drafter")
    critic = FakeChatModel(["final"], model_name="critic")
    chain = RunnableWithMessageHistory(
        RunnableLambda(lambda messages: critic.invoke([drafter.invoke(messages)])),
        lambda session_id: ChatHistory(session_id, ledger))
    chain.invoke("topic", CFG)
    plain = RunnableWithMessageHistory(RunnableLambda(lambda messages: AIMessage("no model")),
                                       lambda session_id: ChatHistory(session_id, ledger))
    plain.invoke("topic", CFG)
    shown = RunnableWithMessageHistory(
        FakeChatModel(["r"], model_name="shown")
        | RunnableLambda(lambda m: critic.invoke([m])),
        lambda session_id: ChatHistory(session_id, ledger))
    shown.invoke("topic", CFG)
    assert [t.run.model for t in recorded_turns(ledger.read("s"))] == ["critic", None, "shown"]


def test_failed_call_is_recorded_with_its_error(ledger: EventStore) -> None:
    """A model that raises leaves a failed run and a call naming the error."""
    chain = RunnableWithMessageHistory(FakeChatModel([RuntimeError("boom")]),
                                       lambda session_id: ChatHistory(session_id, ledger))
    with pytest.raises(RuntimeError):
        chain.invoke("hi", CFG)
    [call] = _calls(ledger, "s")
    assert call.error == "RuntimeError: boom" and call.response is None
    assert call.request == [MessageRef(source="input", start=0, stop=1)]
    [turn] = recorded_turns(ledger.read("s"))
    assert turn.run.status == "error" and turn.calls == [call]


def test_cancelled_stream_records_the_partial_reply(ledger: EventStore) -> None:
    """Closing a stream early records the call as cancelled with what had arrived."""
    chain = RunnableWithMessageHistory(FakeChatModel(["one two three"]),
                                       lambda session_id: ChatHistory(session_id, ledger))
    stream = chain.stream("hi", CFG)
    next(stream)
    stream.close()
    [call] = _calls(ledger, "s")
    assert call.error == "cancelled"
    [turn] = recorded_turns(ledger.read("s"))
    _, response, _ = resolve_call(call, [], turn)
    assert response is not None and response.text == "one "


def test_async_cancelled_stream_records_the_call(ledger: EventStore) -> None:
    """An astream closed early records the call as cancelled too."""
    chain = RunnableWithMessageHistory(FakeChatModel(["one two three"]),
                                       lambda session_id: ChatHistory(session_id, ledger))

    async def run() -> None:
        async with aclosing(chain.astream("hi", CFG)) as stream:
            async for _ in stream:
                break

    asyncio.run(run())
    [call] = _calls(ledger, "s")
    assert call.error == "cancelled"


class _SlowToRecord(ChatHistory):
    """A ledger history whose writes take a while, so a second cancel can land during one."""

    def record_turn(self, turn: Any, **options: Any) -> Any:
        time.sleep(0.2)
        return super().record_turn(turn, **options)

    async def arecord_turn(self, turn: Any, **options: Any) -> Any:
        await asyncio.sleep(0.2)
        return await super().arecord_turn(turn, **options)


def _prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([("system", "sys"), MessagesPlaceholder("history"),
                                             ("human", "{input}")])


async def _echo_chunks(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for chunk in chunks:
        yield chunk


COMPOSITIONS = {
    "prompt | model": lambda model: _prompt() | model,
    "prompt | model | passthrough": lambda model: _prompt() | model | RunnablePassthrough(),
    "prompt | model | async generator": lambda model: _prompt() | model | _echo_chunks,
    "prompt | bound model": lambda model: _prompt() | model.with_config(tags=["t"]),
    "prompt | {key: model}": lambda model: _prompt() | {"reply": model},
}


def _composed(ledger: EventStore, shape: str,
              history: type[ChatHistory] = ChatHistory) -> RunnableWithMessageHistory:
    model = FakeChatModel(["one two three four five"])
    return RunnableWithMessageHistory(
        COMPOSITIONS[shape](model), lambda session_id: history(session_id, ledger),
        input_messages_key="input", history_messages_key="history",
        output_messages_key="reply" if "{" in shape else None)


def _one_cancelled_call(ledger: EventStore, *, ran_ahead: bool = False) -> ModelCalled:
    """The session's one run: cancelled, with its one call, both in one append.

    ``ran_ahead``: the model streams in a task of its own (a ``RunnableParallel`` step) and may
    have finished before the stream was closed.
    """
    [turn] = recorded_turns(ledger.read("s"))
    assert turn.run.status == "cancelled"
    [call] = turn.calls
    assert call.error == "cancelled" or (ran_ahead and call.error is None)
    assert call.stream
    assert len({r.position for r in ledger.read("s")}) == 2  # run and call, one append
    return call


@pytest.mark.parametrize("shape", COMPOSITIONS)
def test_async_stream_closed_early_records_the_call_inside_a_composition(
        ledger: EventStore, shape: str) -> None:
    """aclose() after the first chunk records the model's call as cancelled, wherever it sits."""
    chain = _composed(ledger, shape)

    async def run() -> None:
        stream = chain.astream({"input": "x"}, CFG)
        await anext(stream)
        await stream.aclose()
        # recorded by the time aclose returns, not later by the event loop
        assert [type(r.event) for r in ledger.read("s")] == [RunRecorded, ModelCalled]

    asyncio.run(run())
    _one_cancelled_call(ledger, ran_ahead="{" in shape)


@pytest.mark.parametrize("shape", [s for s in COMPOSITIONS if "async" not in s])
def test_sync_stream_closed_early_records_the_call_inside_a_composition(
        ledger: EventStore, shape: str) -> None:
    """close() after the first chunk records the model's call as cancelled, wherever it sits."""
    stream = _composed(ledger, shape).stream({"input": "x"}, CFG)
    next(stream)
    stream.close()
    _one_cancelled_call(ledger)


async def _cancel_the_consumer(chain: Any, *, settle: float) -> None:
    """Cancel a task that iterates ``chain.astream`` between chunks, then wait ``settle``."""
    async def consume() -> None:
        async for _ in chain.astream({"input": "x"}, CFG):
            await asyncio.sleep(3600)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if settle:
        await asyncio.sleep(settle)


def test_cancelled_consumer_task_records_the_call(ledger: EventStore) -> None:
    """Cancelling the task that iterates an astream (between chunks) records the call."""
    chain = _composed(ledger, "prompt | model")
    asyncio.run(_cancel_the_consumer(chain, settle=0.2))  # the loop closes the stream meanwhile
    _one_cancelled_call(ledger)


def test_stream_abandoned_at_event_loop_shutdown_is_recorded(ledger: EventStore) -> None:
    """A cancelled consumer whose stream asyncio closes only while shutting down still records.

    ``asyncio.run`` cancels the tasks left over when the main coroutine returns, the one
    closing the stream included; recording the cancelled run (slow here, so the cancel surely
    lands during it) is not cut short by that.
    """
    chain = _composed(ledger, "prompt | model", _SlowToRecord)
    # return at once: the stream is closed by asyncio.run's shutdown
    asyncio.run(_cancel_the_consumer(chain, settle=0.0))
    _one_cancelled_call(ledger)


def test_cancelled_run_is_recorded_through_a_second_cancel(ledger: EventStore) -> None:
    """A cancel that arrives while the cancelled run is being recorded waits for the record."""
    started = asyncio.Event()

    async def slow(_: Any) -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    chain = RunnableWithMessageHistory(RunnableLambda(slow),
                                       lambda session_id: _SlowToRecord(session_id, ledger))

    async def run() -> None:
        task = asyncio.create_task(chain.ainvoke("hi", CFG))
        await started.wait()
        task.cancel()
        await asyncio.sleep(0.05)  # recording the cancelled run has begun
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert [t.run.status for t in recorded_turns(ledger.read("s"))] == ["cancelled"]


def test_stream_still_open_at_event_loop_shutdown_is_recorded(
        ledger: EventStore, caplog: pytest.LogCaptureFixture) -> None:
    """A stream left open (and referenced) when ``asyncio.run`` returns is closed and recorded.

    ``asyncio.run`` closes every async generator still open, the chain's inner ones among them
    and in any order; the turn is recorded once, with its call, and nothing errs.
    """
    chain = _composed(ledger, "prompt | model")
    kept: list[Any] = []

    async def run() -> None:
        stream = chain.astream({"input": "x"}, CFG)
        kept.append(stream)
        await anext(stream)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(run())
    assert not caplog.records
    _one_cancelled_call(ledger)


def test_no_recording_outside_a_turn(ledger: EventStore) -> None:
    """A model called between a stream's chunks, or with no wrapper, is no call of the turn."""
    chain = RunnableWithMessageHistory(FakeChatModel(["one two"]),
                                       lambda session_id: ChatHistory(session_id, ledger))
    outside = FakeChatModel(["x"])
    for _ in chain.stream("hi", CFG):
        outside.invoke("between chunks")
    assert len(_calls(ledger, "s")) == 1


def test_non_json_input_values_are_kept_as_their_repr(ledger: EventStore) -> None:
    """A chain input value that is not JSON does not fail the turn; it is kept as a repr."""
    chain = RunnableWithMessageHistory(
        RunnableLambda(lambda d: AIMessage(d["input"][-1].text)),
        lambda session_id: ChatHistory(session_id, ledger), input_messages_key="input")
    chain.invoke({"input": "hi", "when": {1, 2}, "note": [HumanMessage("x")]}, CFG)
    [run] = [r.event for r in ledger.read("s") if isinstance(r.event, RunRecorded)]
    assert run.chain_input["when"] == {"$repr": "{1, 2}"}
    assert run.chain_input["note"][0]["$message"]["content"] == "x"
    assert _calls(ledger, "s") == []


def test_rebuilt_projection_ignores_model_calls(ledger: EventStore) -> None:
    """Rebuilding the projections from a log with model calls gives the same history."""
    chain = _prompt_chain(ledger)
    chain.invoke({"language": "english", "input": "hi im bob!"}, CFG)
    chain.invoke({"language": "english", "input": "whats my name?"}, CFG)
    before = ChatHistory("s", ledger).messages
    ledger.rebuild()
    assert ChatHistory("s", ledger).messages == before
    assert ledger.session("s").message_count == 4  # type: ignore[union-attr]


def test_request_references_resolve_to_the_exact_messages() -> None:
    """History in order, reordered or partly used, and input messages all resolve back exactly."""
    from chatledger.projections import RecordedTurn
    from chatledger.runtime import ModelCall
    from chatledger.runtime._recording import model_called_events

    history = [HumanMessage(f"h{i}") for i in range(6)]
    inputs = [HumanMessage("new")]
    system = SystemMessage("sys")
    requests = [
        [system, *history, HumanMessage("new")],
        [*history[3:], system, history[0], *inputs],
        [history[5], history[4], SystemMessage("other")],
    ]
    calls = [ModelCall(provider="p", model="m", parameters={}, request=list(r), response=None,
                       stream=False, started=0.0, latency_ms=1.0) for r in requests]
    events = model_called_events(calls, run_id="r", history=history, inputs=inputs, outputs=[],
                                 started=0.0)
    assert events[0].request == [system, MessageRef(source="history", start=0, stop=6),
                                 MessageRef(source="input", start=0, stop=1)]
    run = RunRecorded(run_id="r", status="ok")
    turn = RecordedTurn(1, None, run, inputs, [], True)  # type: ignore[arg-type]
    for event, request in zip(events, requests, strict=True):
        assert resolve_call(event, history, turn)[0] == request


def test_erasing_a_session_erases_its_model_calls(ledger: EventStore) -> None:
    """erase() removes model-call payloads too (they hold rendered prompts); verify still passes."""
    chain = _prompt_chain(ledger)
    chain.invoke({"language": "secret-language", "input": "hi im bob!"}, CFG)
    ledger.erase("s", reason="user request")
    types = [(r.type, type(r.event).__name__) for r in ledger.read("s")]
    assert ("model_called", "PayloadErased") in types
    assert not any(isinstance(r.event, ModelCalled) for r in ledger.read("s"))
    assert ledger.verify().ok


def test_turns_record_on_every_backend(store: EventStore) -> None:
    """A recorded turn, its model call and the rebuilt projection are the same on every backend."""
    chain = _prompt_chain(store)
    chain.invoke({"language": "italian", "input": "hi im bob!"}, CFG)
    chain.invoke({"language": "italian", "input": "whats my name?"}, CFG)
    turns = recorded_turns(store.read("s"))
    assert [len(t.calls) for t in turns] == [1, 1]
    _, history = store.load_history_at("s", version=turns[1].run.history_version)
    assert resolve_call(turns[1].calls[0], history, turns[1])[2]
    before = ChatHistory("s", store).messages
    assert store.session("s").message_count == 4  # type: ignore[union-attr]
    store.rebuild()
    assert ChatHistory("s", store).messages == before and len(before) == 4
    assert store.session("s").message_count == 4  # type: ignore[union-attr]
