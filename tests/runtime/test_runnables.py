"""Runnable basics: composition, coercion, passthrough, config, batch and streaming."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from operator import itemgetter
from typing import Any

import pytest

from chatledger.eventstore import AIMessage, AIMessageChunk, InvalidInputError
from chatledger.runtime import (
    Runnable,
    RunnableGenerator,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    coerce_to_runnable,
    ensure_config,
)
from chatledger.runtime.models import FakeChatModel


def test_pipe_composes_left_to_right() -> None:
    """``a | b`` runs a then b on a's output, and nested sequences flatten."""
    add = RunnableLambda(lambda x: x + 1)
    double = RunnableLambda(lambda x: x * 2)
    chain = add | double | add
    assert isinstance(chain, RunnableSequence)
    assert len(chain.steps) == 3
    assert chain.invoke(3) == 9


def test_callables_and_itemgetter_coerce_on_either_side() -> None:
    """Plain functions and ``operator.itemgetter`` coerce to lambdas on both sides of ``|``."""
    model = FakeChatModel(["ok"])
    chain = itemgetter("question") | model
    assert chain.invoke({"question": "hi"}).content == "ok"
    assert model.calls[-1][0].content == "hi"
    assert (RunnableLambda(str.upper) | (lambda s: s + "!")).invoke("a") == "A!"


def test_dict_coerces_to_parallel() -> None:
    """A dict in a chain becomes a ``RunnableParallel`` giving a dict of outputs."""
    chain = RunnableLambda(lambda x: x * 10) | {"same": RunnablePassthrough(), "len": lambda x: len(str(x))}
    assert chain.invoke(5) == {"same": 50, "len": 2}
    assert isinstance(coerce_to_runnable({"a": lambda x: x}), RunnableParallel)


def test_dict_on_the_left_of_a_runnable_coerces() -> None:
    """``{...} | runnable`` works through ``__ror__``."""
    chain = {"a": itemgetter("x"), "b": itemgetter("y")} | RunnableLambda(lambda d: d["a"] + d["b"])
    assert chain.invoke({"x": 1, "y": 2}) == 3


def test_coercing_something_else_raises() -> None:
    """A value that is not a runnable, callable or dict raises InvalidInputError naming its type."""
    with pytest.raises(InvalidInputError, match="int"):
        coerce_to_runnable(5)


def test_passthrough_assign_adds_keys_without_mutating_the_input() -> None:
    """``RunnablePassthrough.assign`` returns a new dict with the computed keys added."""
    given = {"a": 2}
    out = RunnablePassthrough.assign(b=lambda d: d["a"] * 3).invoke(given)
    assert out == {"a": 2, "b": 6}
    assert given == {"a": 2}


def test_passthrough_assign_needs_a_dict() -> None:
    """``assign`` on a non-dict input raises InvalidInputError (a ValueError)."""
    with pytest.raises(InvalidInputError, match="must be a dict"):
        RunnablePassthrough.assign(b=lambda d: 1).invoke([1])


def test_lambda_receives_config_when_it_asks_for_it() -> None:
    """A function with a ``config`` parameter gets the run's config; others get only the input."""
    seen: list[dict[str, Any]] = []

    def spy(x: int, config: dict[str, Any]) -> int:
        seen.append(config)
        return x

    chain = RunnableLambda(lambda x: x) | RunnableLambda(spy)
    chain.invoke(1, {"configurable": {"user": "u1"}, "tags": ["t"]})
    assert seen[0]["configurable"] == {"user": "u1"}
    assert seen[0]["tags"] == ["t"]


def test_unknown_top_level_config_keys_move_into_configurable() -> None:
    """Like LangChain's ensure_config, scalar top-level keys land in ``configurable``."""
    config = ensure_config({"session_id": "abc", "tags": ["x"], "configurable": {"k": 1}})
    assert config["configurable"] == {"k": 1, "session_id": "abc"}
    assert config["tags"] == ["x"]
    assert config["recursion_limit"] == 25


def test_with_config_merges_under_call_config() -> None:
    """``with_config`` values reach the runnable; a call's own configurable keys win."""
    seen: list[dict[str, Any]] = []
    bound = RunnableLambda(lambda x, config: seen.append(config["configurable"]) or x).with_config(
        configurable={"a": 1, "b": 1}, tags=["bound"]
    )
    assert bound.invoke("x", {"configurable": {"b": 2}}) == "x"
    assert seen == [{"a": 1, "b": 2}]


def test_async_function_serves_ainvoke() -> None:
    """A lambda over a coroutine function is awaited by ``ainvoke``."""

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert asyncio.run(RunnableLambda(double).ainvoke(4)) == 8
    with pytest.raises(InvalidInputError, match="async"):
        RunnableLambda(double).invoke(4)


def test_sync_runnable_ainvoke_runs_off_the_event_loop() -> None:
    """The default ``ainvoke`` runs a sync ``invoke`` in a worker thread, not on the loop."""

    def where(_: object) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    assert asyncio.run(RunnableLambda(where).ainvoke(None)) is False


def test_generator_lambda_streams_and_invoke_sums() -> None:
    """A generator function streams its items; ``invoke`` returns their sum."""

    def letters(word: str) -> Iterator[str]:
        yield from word

    assert list(RunnableLambda(letters).stream("abc")) == ["a", "b", "c"]
    assert RunnableLambda(letters).invoke("abc") == "abc"


def test_stream_passes_model_chunks_through_a_sequence() -> None:
    """Streaming ``prompt-ish | model | generator`` yields word chunks as they come."""
    model = FakeChatModel(["one two three"])

    def upper(chunks: Iterator[AIMessageChunk]) -> Iterator[str]:
        for chunk in chunks:
            yield chunk.text.upper()

    chain = RunnableLambda(lambda q: [("human", q)]) | model | upper
    assert isinstance(chain.last, RunnableGenerator)
    assert list(chain.stream("go")) == ["ONE ", "TWO ", "THREE"]
    assert chain.invoke("go") == "ONE TWO THREE"


def test_stream_of_model_chunks_adds_up_to_the_message() -> None:
    """A model's streamed chunks sum to the same content as its ``invoke`` reply."""
    chunks = list((RunnableLambda(lambda q: q) | FakeChatModel(["a b c"])).stream("x"))
    assert len(chunks) == 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0] + chunks[1] + chunks[2]
    assert total.to_message().content == "a b c"
    assert type(total.to_message()) is AIMessage


def test_non_streaming_last_step_sees_the_summed_input() -> None:
    """A plain function after a streaming model gets the whole reply, once."""
    calls: list[Any] = []
    chain = FakeChatModel(["a b"]) | RunnableLambda(lambda m: calls.append(m) or m.text)
    assert list(chain.stream("x")) == ["a b"]
    assert len(calls) == 1


def test_astream_passes_chunks_through() -> None:
    """``astream`` of a sequence ending in a model yields its chunks."""

    async def collect() -> list[Any]:
        chain = RunnableLambda(lambda q: q) | FakeChatModel(["x y"])
        return [c.text async for c in chain.astream("q")]

    assert asyncio.run(collect()) == ["x ", "y"]


def test_async_generator_transform_streams() -> None:
    """An async generator function piped after a model transforms chunks on ``astream``."""

    async def shout(chunks: AsyncIterator[AIMessageChunk]) -> AsyncIterator[str]:
        async for chunk in chunks:
            yield chunk.text.upper()

    async def collect() -> list[str]:
        return [c async for c in (FakeChatModel(["p q"]) | shout).astream("x")]

    assert asyncio.run(collect()) == ["P ", "Q"]


def test_parallel_stream_chunks_merge_to_invoke_output() -> None:
    """``RunnableParallel.stream`` yields per-key chunks that add up to ``invoke``'s dict."""
    par = RunnableParallel(words=FakeChatModel(["a b"]), n=lambda x: 1)
    chunks = list(par.stream("x"))
    merged: dict[str, Any] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            merged[key] = merged[key] + value if key in merged else value
    assert merged["n"] == 1
    assert merged["words"].text == "a b"


def test_batch_honours_max_concurrency() -> None:
    """``batch`` runs items in parallel but never more than ``max_concurrency`` at once."""
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}
    pair = threading.Barrier(2, timeout=10)

    def work(x: int) -> int:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        pair.wait()  # two items must be running together to get past this
        with lock:
            state["active"] -= 1
        return x * x

    out = RunnableLambda(work).batch([1, 2, 3, 4], {"max_concurrency": 2})
    assert out == [1, 4, 9, 16]
    assert state["peak"] == 2


def test_batch_per_item_configs_and_return_exceptions() -> None:
    """A list of configs gives each item its own; ``return_exceptions`` returns the error."""

    def pick(x: int, config: dict[str, Any]) -> Any:
        if x < 0:
            raise ValueError("negative")
        return config["configurable"]["tag"]

    runnable = RunnableLambda(pick)
    configs = [{"configurable": {"tag": "a"}}, {"configurable": {"tag": "b"}},
               {"configurable": {"tag": "c"}}]
    out = runnable.batch([1, 2, -1], configs, return_exceptions=True)
    assert out[:2] == ["a", "b"]
    assert isinstance(out[2], ValueError)
    with pytest.raises(InvalidInputError, match="2 configs"):
        runnable.batch([1, 2, 3], configs[:2])


def test_abatch_honours_max_concurrency() -> None:
    """``abatch`` keeps at most ``max_concurrency`` items in flight."""
    state = {"active": 0, "peak": 0}

    async def work(x: int) -> int:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        for _ in range(3):
            await asyncio.sleep(0)
        state["active"] -= 1
        return -x

    out = asyncio.run(RunnableLambda(work).abatch(list(range(6)), {"max_concurrency": 2}))
    assert out == [0, -1, -2, -3, -4, -5]
    assert state["peak"] == 2


def test_lambda_returning_a_runnable_invokes_it() -> None:
    """A function that returns a runnable has it invoked on the same input."""
    router = RunnableLambda(lambda x: RunnableLambda(lambda y: y * 3) if x > 0 else RunnableLambda(abs))
    assert router.invoke(2) == 6
    assert router.invoke(-2) == 2


def test_runnable_subclass_needs_only_invoke() -> None:
    """A subclass that implements ``invoke`` gets batch, stream and the async twins."""

    class Shout(Runnable[str, str]):
        def invoke(self, input: str, config: dict[str, Any] | None = None) -> str:
            return input.upper()

    shout = Shout()
    assert shout.batch(["a", "b"]) == ["A", "B"]
    assert list(shout.stream("c")) == ["C"]
    assert asyncio.run(shout.ainvoke("d")) == "D"
    assert (shout | str.lower).invoke("e") == "e"
