"""ChatHistory's async twins, driven the way applications drive them: ``asyncio.run``.

Every coroutine runs under ``asyncio.run`` in a helper thread with a time limit, so an event
loop that cannot shut down fails its test instead of hanging the suite. This file also runs as
a script (``python test_history_async.py URL``): a child process that calls ``asyncio.run``
repeatedly, the way a CLI or a script uses the async API.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HumanMessage,
    InvalidInputError,
    NotFoundError,
    SystemMessage,
    open_store,
)
from chatledger.projections import ChatHistory, HistoryView, fold, messages_of

T = TypeVar("T")
LOOP_LIMIT_S = 30
CHILD_LIMIT_S = 10
CHILD_RUNS = 10
TURN = [HumanMessage(content="hi"), AIMessage(content="hello")]


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(factory())`` in a thread; fail (not hang) if the loop cannot shut down."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(factory())
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True, name="asyncio-run")
    thread.start()
    thread.join(LOOP_LIMIT_S)
    if thread.is_alive():
        pytest.fail(f"asyncio.run() did not return within {LOOP_LIMIT_S} s: the event loop "
                    "could not shut down")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


@pytest.fixture
def run(backend: str) -> Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]:
    """The time-limited asyncio.run, for every backend."""
    return _run


def test_async_twins_match_the_sync_api(store: EventStore, run: Any) -> None:
    """aadd_messages, aget_messages, aload, aas_of, aclear and aversion behave like the sync calls."""
    history = ChatHistory("s", store)

    async def scenario() -> None:
        result = await history.aadd_messages(TURN)
        assert result.version == 2
        await history.aadd_message(SystemMessage(content="later"))
        assert await history.aget_messages() == [*TURN, SystemMessage(content="later")]
        assert await history.aload() == HistoryView(3, [*TURN, SystemMessage(content="later")])
        assert await history.aas_of(version=2) == TURN
        assert await history.aas_of(time=history.events()[0].recorded_at) == TURN
        await history.aclear()
        assert await history.aget_messages() == []
        assert await history.aversion() == 4
        assert await history.aas_of(version=3) == [*TURN, SystemMessage(content="later")]

    run(scenario)
    assert history.messages == []
    assert history.version == 4


def test_async_appends_run_concurrently_without_losing_messages(
    store: EventStore, run: Any
) -> None:
    """Many concurrent aadd_messages calls on one session all land, each turn kept whole."""
    history = ChatHistory("s", store)

    async def scenario() -> None:
        await asyncio.gather(*(
            history.aadd_messages([HumanMessage(content=f"q{i}"), AIMessage(content=f"a{i}")])
            for i in range(10)
        ))

    run(scenario)
    messages = history.messages
    assert len(messages) == 20
    for i in range(0, 20, 2):
        assert messages[i + 1] == AIMessage(content="a" + messages[i].text[1:])
    assert sorted(m.text for m in messages[::2]) == sorted(f"q{i}" for i in range(10))
    assert messages == messages_of(fold(store.read("s")))


def test_async_as_of_raises_the_same_errors(store: EventStore, run: Any) -> None:
    """aas_of rejects a negative version, a version past the head and a naive time like as_of."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    with pytest.raises(InvalidInputError, match="version"):
        run(lambda: history.aas_of(version=-1))
    with pytest.raises(NotFoundError, match="version 99"):
        run(lambda: history.aas_of(version=99))
    with pytest.raises(InvalidInputError, match="timezone"):
        run(lambda: history.aas_of(time=datetime.now()))
    assert history.messages == TURN


def test_async_add_messages_rejects_bad_input_and_saves_nothing(
    store: EventStore, run: Any
) -> None:
    """aadd_messages rejects a non-message item or a bare string before anything is saved."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    with pytest.raises(InvalidInputError, match="item 1"):
        run(lambda: history.aadd_messages([HumanMessage(content="ok"), "oops"]))  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="list of messages"):
        run(lambda: history.aadd_messages("oops"))  # type: ignore[arg-type]
    assert history.version == 2
    assert history.messages == TURN


def test_asyncio_run_returns_in_a_fresh_process(
    store: EventStore, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A process that calls asyncio.run(history.aget_messages()) repeatedly finishes and sees the history."""
    url = store.url if backend != "sqlite-memory" else f"sqlite:///{tmp_path / 'async.db'}"
    with open_store(url) as writer:
        ChatHistory("s", writer).add_messages(TURN)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=CHILD_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the child did not finish {CHILD_RUNS} asyncio.run calls in {CHILD_LIMIT_S} s")
    assert proc.returncode == 0, err
    assert out.split() == ["2"] * CHILD_RUNS


def _child(url: str) -> None:
    with open_store(url) as store:
        history = ChatHistory("s", store)
        for _ in range(CHILD_RUNS):
            print(len(asyncio.run(history.aget_messages())), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
