"""ChatHistory's public API: reads, writes, clear, as-of, windows, forks and URLs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import chatledger.projections._history as history_module
from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    AppendResult,
    EventStore,
    HistoryCleared,
    HumanMessage,
    Message,
    MessageAppended,
    Record,
    SessionForked,
    SessionKey,
    SystemMessage,
    ToolMessage,
    get_buffer_string,
    open_store,
)
from chatledger.projections import (
    ChatHistory,
    HistoryView,
    Turn,
    approximate_tokens,
    fold,
    messages_of,
    shared_store,
)

TURN: list[AnyMessage] = [HumanMessage(content="hi"), AIMessage(content="hello")]


def _tool_exchange() -> list[HumanMessage | AIMessage | ToolMessage]:
    return [
        HumanMessage(content="weather in Paris and Rome?"),
        AIMessage(content="", tool_calls=[
            {"name": "weather", "args": {"city": "Paris"}, "id": "call-1"},
            {"name": "weather", "args": {"city": "Rome"}, "id": "call-2"},
        ]),
        ToolMessage(content="18C", tool_call_id="call-1"),
        ToolMessage(content="24C", tool_call_id="call-2"),
        AIMessage(content="Paris 18C, Rome 24C."),
    ]


@pytest.fixture
def fresh_shared_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EventStore]]:
    """An empty per-process store registry for this test; its stores are closed afterwards."""
    stores: dict[str, EventStore] = {}
    monkeypatch.setattr(history_module, "_stores", stores)
    yield stores
    for opened in stores.values():
        opened.close()


# -- DESIGN.md, "Public API at a glance" ---------------------------------------------------


def test_design_example_block_runs_line_for_line(
    tmp_path: Path, fresh_shared_stores: dict[str, EventStore]
) -> None:
    """The DESIGN.md example block (imports, store, key, append, read, verify, ChatHistory) behaves as written."""
    from chatledger import eventstore
    from chatledger.eventstore import (
        ChatledgerError,
        ConcurrencyError,
        HistoryCleared,
        InvalidKeyError,
    )
    from chatledger.runtime import (  # also importable from eventstore
        AIMessage,
        ChatPromptTemplate,
        ConfigurableFieldSpec,
        HumanMessage,
        MessagesPlaceholder,
        RunnableLambda,
        RunnableParallel,
        RunnablePassthrough,
        RunnableWithMessageHistory,
        SystemMessage,
        ToolMessage,
    )
    from chatledger.runtime.models import FakeChatModel, OpenAIChatModel

    assert (HumanMessage, AIMessage, SystemMessage, ToolMessage) == (
        eventstore.HumanMessage, eventstore.AIMessage, eventstore.SystemMessage,
        eventstore.ToolMessage)
    assert issubclass(ConcurrencyError, ChatledgerError)
    assert issubclass(InvalidKeyError, ChatledgerError)
    assert all(callable(name) for name in (
        HistoryCleared, ChatPromptTemplate, MessagesPlaceholder, RunnableLambda, RunnableParallel,
        RunnablePassthrough, RunnableWithMessageHistory, ConfigurableFieldSpec, FakeChatModel,
        OpenAIChatModel))

    store = open_store("sqlite:///memory.db")
    try:
        assert not (tmp_path / "memory.db").exists()  # opening never writes
        key = SessionKey(user_id="123", conversation_id="1")
        store.append(key, [MessageAppended(message=HumanMessage(content="hi"))], expected_version=0)
        assert (tmp_path / "memory.db").exists()  # the first append creates the ledger
        records = store.read(key)
        assert len(records) == 1
        for rec in records:
            assert rec.position == 1
            assert rec.stream_id == key.stream_id
            assert rec.version == 1
            assert isinstance(rec.event_id, str) and rec.event_id
            assert rec.recorded_at.tzinfo is not None
            assert rec.recorded_at.utcoffset() == timedelta(0)
            assert rec.event == MessageAppended(message=HumanMessage(content="hi"))
            assert isinstance(rec.meta, dict)
        assert store.verify().ok is True

        history = ChatHistory("abc123", store)
        history.add_messages([HumanMessage(content="hi"), AIMessage(content="hello")])
        assert (history.messages, history.version) == (
            [HumanMessage(content="hi"), AIMessage(content="hello")], 2)
        assert history.as_of(version=1) == [HumanMessage(content="hi")]
        history.clear()
        assert history.messages == []
        assert history.as_of(version=2) == [HumanMessage(content="hi"), AIMessage(content="hello")]

        by_url = ChatHistory("abc123", "sqlite:///memory.db")
        assert by_url.version == 3
        assert by_url.as_of(version=2) == [HumanMessage(content="hi"), AIMessage(content="hello")]
    finally:
        store.close()


# -- reads and writes ----------------------------------------------------------------------


def test_new_session_is_empty(store: EventStore) -> None:
    """A session with no events has no messages, version 0, an empty buffer and no events."""
    history = ChatHistory("nobody", store)
    assert history.messages == []
    assert history.get_messages() == []
    assert history.version == 0
    assert history.events() == []
    assert str(history) == ""
    assert history.load() == HistoryView(0, [])


def test_add_messages_appends_one_event_per_message_atomically(store: EventStore) -> None:
    """add_messages writes one MessageAppended per message in one append and returns its result."""
    history = ChatHistory("s", store)
    result = history.add_messages(_tool_exchange())
    assert isinstance(result, AppendResult)
    assert result.version == 5
    assert result.first_version == 1
    assert len(result.positions) == 5
    records = history.events()
    assert [r.version for r in records] == [1, 2, 3, 4, 5]
    assert [r.position for r in records] == result.positions
    assert [r.event for r in records] == [MessageAppended(message=m) for m in _tool_exchange()]
    assert len({r.recorded_at for r in records}) == 1
    assert history.messages == _tool_exchange()
    assert history.version == 5


def test_add_message_and_typed_helpers(store: EventStore) -> None:
    """add_message, add_user_message and add_ai_message accept messages or plain strings."""
    history = ChatHistory("s", store)
    history.add_message(SystemMessage(content="be brief"))
    history.add_user_message("plain question")
    history.add_user_message(HumanMessage(content="typed question", name="ann", id="h-1"))
    history.add_ai_message("plain answer")
    history.add_ai_message(AIMessage(content="typed answer", usage_metadata={
        "input_tokens": 3, "output_tokens": 2, "total_tokens": 5}))
    assert history.messages == [
        SystemMessage(content="be brief"),
        HumanMessage(content="plain question"),
        HumanMessage(content="typed question", name="ann", id="h-1"),
        AIMessage(content="plain answer"),
        AIMessage(content="typed answer", usage_metadata={
            "input_tokens": 3, "output_tokens": 2, "total_tokens": 5}),
    ]
    assert history.version == 5


def test_langchain_messages_are_converted_on_the_way_in(store: EventStore) -> None:
    """LangChain message objects given to add_messages, add_message, the typed helpers,
    aadd_messages or record_turn are saved as chatledger's, every field kept."""
    from langchain_core import messages as lc

    history = ChatHistory("s", store)
    history.add_messages([
        lc.HumanMessage("weather?", id="h1", name="ann"),
        lc.AIMessage("", tool_calls=[{"name": "f", "args": {"c": "P"}, "id": "z"}],
                     usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}),
        lc.ToolMessage("sunny", tool_call_id="z")])
    history.add_message(lc.SystemMessage("note"))
    history.add_user_message(lc.HumanMessage("user"))  # type: ignore[arg-type]
    history.add_ai_message(lc.AIMessageChunk("ch") + lc.AIMessageChunk("unk"))  # type: ignore[arg-type]
    asyncio.run(history.aadd_messages([lc.HumanMessage("async")]))
    history.record_turn(Turn(run_id="r", input=[lc.HumanMessage("turn")],  # type: ignore[list-item]
                             output=[lc.AIMessage("reply")], history_version=None))  # type: ignore[list-item]
    assert history.messages == [
        HumanMessage("weather?", id="h1", name="ann"),
        AIMessage("", tool_calls=[{"name": "f", "args": {"c": "P"}, "id": "z",
                                   "type": "tool_call"}],
                  usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}),
        ToolMessage("sunny", tool_call_id="z"), SystemMessage("note"), HumanMessage("user"),
        AIMessage("chunk"), HumanMessage("async"), HumanMessage("turn"), AIMessage("reply")]


def test_streamed_chunk_is_stored_as_a_whole_message(store: EventStore) -> None:
    """An AIMessageChunk (a summed stream) is stored and read back as an AIMessage."""
    history = ChatHistory("s", store)
    history.add_message(AIMessageChunk(content="hel") + AIMessageChunk(content="lo"))
    [message] = history.messages
    assert type(message) is AIMessage
    assert message == AIMessage(content="hello")


def test_messages_round_trip_every_field(store: EventStore) -> None:
    """Content blocks, names, ids, metadata, tool calls and tool results come back unchanged."""
    messages = [
        SystemMessage(content="sys", id="s-1"),
        HumanMessage(content=["look:", {"type": "image_url", "image_url": {"url": "data:x"}}],
                     additional_kwargs={"k": [1, 2]}, name="ann"),
        AIMessage(content="", tool_calls=[{"name": "f", "args": {"a": {"b": None}}, "id": "t1"}],
                  response_metadata={"model": "m", "finish_reason": "tool_calls"}, id="a-1"),
        ToolMessage(content="done", tool_call_id="t1", artifact={"raw": [1]}, status="error"),
    ]
    ChatHistory("s", store).add_messages(messages)
    assert ChatHistory("s", store).messages == messages


def test_two_history_objects_for_one_key_always_agree(store: EventStore) -> None:
    """Nothing is cached: a write through one ChatHistory is seen by another at once."""
    first = ChatHistory("s", store)
    second = ChatHistory(SessionKey(session_id="s"), store)
    first.add_messages(TURN)
    assert second.messages == TURN
    second.clear()
    assert first.messages == []
    assert first.version == second.version == 3


def test_plain_string_key_means_session_id(store: EventStore) -> None:
    """ChatHistory("abc123", ...) is the session SessionKey(session_id="abc123")."""
    by_string = ChatHistory("abc123", store)
    assert by_string.key == SessionKey(session_id="abc123")
    by_string.add_messages(TURN)
    assert ChatHistory(SessionKey(session_id="abc123"), store).messages == TURN
    assert store.load_history(SessionKey(session_id="abc123")) == (2, TURN)
    assert ChatHistory({"session_id": "abc123"}, store).messages == TURN


def test_composite_keys_are_separate_sessions(store: EventStore) -> None:
    """Sessions that differ in any key part never see each other's messages."""
    a = ChatHistory(SessionKey(user_id="1", conversation_id="1"), store)
    b = ChatHistory(SessionKey(user_id="1", conversation_id="2"), store)
    c = ChatHistory(SessionKey(user_id="1"), store)
    a.add_user_message("for a")
    b.add_user_message("for b")
    assert a.messages == [HumanMessage(content="for a")]
    assert b.messages == [HumanMessage(content="for b")]
    assert c.messages == []


def test_str_is_the_buffer_string(store: EventStore) -> None:
    """str(history) renders 'Role: text' lines like LangChain's buffer string."""
    history = ChatHistory("s", store)
    history.add_messages([SystemMessage(content="be brief"), *TURN])
    assert str(history) == "System: be brief\nHuman: hi\nAI: hello"
    history.add_messages(_tool_exchange())
    assert str(history) == get_buffer_string(history.messages)


def test_events_returns_the_raw_records(store: EventStore) -> None:
    """events() returns the session's records and passes read filters through."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    history.clear(reason="start over")
    records = history.events()
    assert all(isinstance(r, Record) for r in records)
    assert [r.event for r in records] == [
        MessageAppended(message=TURN[0]), MessageAppended(message=TURN[1]),
        HistoryCleared(reason="start over")]
    assert [r.version for r in history.events(after_version=1)] == [2, 3]
    assert [r.version for r in history.events(until_version=2)] == [1, 2]


# -- clear ---------------------------------------------------------------------------------


def test_clear_appends_history_cleared_and_keeps_earlier_versions(store: EventStore) -> None:
    """clear() appends HistoryCleared: messages empty, as_of(before the clear) still has them."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    before = history.version
    result = history.clear()
    assert result.version == before + 1
    assert history.version == before + 1
    assert history.messages == []
    assert isinstance(history.events()[-1].event, HistoryCleared)
    assert history.as_of(version=before) == TURN
    assert history.as_of(version=before + 1) == []
    history.add_user_message("again")
    assert history.messages == [HumanMessage(content="again")]
    assert history.as_of(version=before) == TURN
    assert store.verify().ok


def test_clear_on_an_empty_session_is_recorded(store: EventStore) -> None:
    """Clearing a session with no messages still appends the event and stays empty."""
    history = ChatHistory("s", store)
    history.clear()
    assert history.version == 1
    assert history.messages == []


# -- as_of ---------------------------------------------------------------------------------


def test_as_of_every_version_matches_the_fold(store: EventStore) -> None:
    """as_of(version=v) equals the fold of the first v events, for every v from 0 to the head."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    history.add_messages(_tool_exchange())
    history.clear()
    history.add_user_message("after clear")
    records = store.read("s")
    assert history.version == len(records) == 9
    for v in range(history.version + 1):
        assert history.as_of(version=v) == messages_of(fold(records[:v])), v
    assert history.as_of(version=0) == []
    assert history.as_of(version=history.version) == history.messages


def test_as_of_time_follows_recorded_at(store: EventStore) -> None:
    """as_of(time=t) is the history at the last event recorded at or before t."""
    history = ChatHistory("s", store)
    history.add_user_message("one")
    history.add_ai_message("two")
    history.clear()
    history.add_user_message("three")
    records = store.read("s")
    first = records[0].recorded_at
    assert history.as_of(time=first - timedelta(microseconds=1)) == []
    for rec in records:
        upto = max(r.version for r in records if r.recorded_at <= rec.recorded_at)
        assert history.as_of(time=rec.recorded_at) == history.as_of(version=upto)
    assert history.as_of(time=records[-1].recorded_at + timedelta(days=1)) == history.messages


def test_as_of_time_accepts_any_timezone(store: EventStore) -> None:
    """An aware datetime in another zone names the same instant as in UTC."""
    history = ChatHistory("s", store)
    history.add_messages(TURN)
    moment = history.events()[-1].recorded_at
    elsewhere = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert history.as_of(time=elsewhere) == TURN
    assert history.as_of(time=elsewhere - timedelta(microseconds=1)) == []


def test_as_of_on_an_unknown_session(store: EventStore) -> None:
    """An unknown session is empty at version 0 and at any time."""
    history = ChatHistory("nobody", store)
    assert history.as_of(version=0) == []
    assert history.as_of(time=datetime.now(UTC)) == []


# -- window --------------------------------------------------------------------------------


def test_window_last_n_keeps_tool_exchanges_whole(store: EventStore) -> None:
    """window(last=N) is the last N messages minus tool results whose call fell outside."""
    history = ChatHistory("s", store)
    history.add_messages([SystemMessage(content="sys"), *_tool_exchange()])
    all_messages = history.messages
    assert history.window(last=1) == all_messages[-1:]
    assert history.window(last=2) == all_messages[-1:]  # would start at a tool result
    assert history.window(last=3) == all_messages[-1:]
    assert history.window(last=4) == all_messages[-4:]  # the AI call and both results
    assert history.window(last=100) == all_messages


def test_window_max_tokens_with_a_counter(store: EventStore) -> None:
    """window(max_tokens=N, counter=...) keeps the longest suffix within the token budget."""
    history = ChatHistory("s", store)
    history.add_messages([HumanMessage(content="a" * 10), AIMessage(content="b" * 20),
                          HumanMessage(content="c" * 5)])

    def by_length(message: Message) -> int:
        return len(message.text)

    assert history.window(max_tokens=5, counter=by_length) == [HumanMessage(content="c" * 5)]
    assert history.window(max_tokens=24, counter=by_length) == [HumanMessage(content="c" * 5)]
    assert history.window(max_tokens=25, counter=by_length) == history.messages[1:]
    assert history.window(max_tokens=4, counter=by_length) == []
    assert history.window(max_tokens=35, counter=by_length) == history.messages
    assert history.window(last=1, max_tokens=35, counter=by_length) == history.messages[-1:]


def test_window_default_counter_respects_the_budget(store: EventStore) -> None:
    """Without a counter, the approximate token count keeps the window within max_tokens."""
    history = ChatHistory("s", store)
    history.add_messages([HumanMessage(content="x" * n) for n in (40, 8, 12, 100, 4)])
    for budget in (1, 5, 10, 20, 40, 80, 200):
        kept = history.window(max_tokens=budget)
        assert sum(approximate_tokens(m) for m in kept) <= budget
        assert kept == history.messages[len(history.messages) - len(kept):]


# -- fork ----------------------------------------------------------------------------------


def test_fork_copies_the_current_history_and_leaves_the_parent(store: EventStore) -> None:
    """fork(new_key) starts a stream with SessionForked(parent, parent_version); the parent is untouched."""
    parent = ChatHistory(SessionKey(user_id="1", conversation_id="main"), store)
    parent.add_messages(TURN)
    parent_events = parent.events()
    child = parent.fork(SessionKey(user_id="1", conversation_id="branch"))
    assert child.key == SessionKey(user_id="1", conversation_id="branch")
    [first] = child.events()
    assert first.version == 1
    assert isinstance(first.event, SessionForked)
    assert first.event.parent == {"user_id": "1", "conversation_id": "main"}
    assert first.event.parent_version == 2
    assert child.messages == TURN
    assert child.version == 1

    child.add_user_message("only in the branch")
    parent.add_user_message("only in the parent")
    assert child.messages == [*TURN, HumanMessage(content="only in the branch")]
    assert parent.messages == [*TURN, HumanMessage(content="only in the parent")]
    assert parent.events()[:2] == parent_events
    assert store.verify().ok


def test_fork_at_an_earlier_version_takes_that_prefix(store: EventStore) -> None:
    """fork(at_version=v) inherits the parent's history as of v, even across a later clear."""
    parent = ChatHistory("p", store)
    parent.add_messages(TURN)
    parent.add_messages(_tool_exchange())
    parent.clear()
    child = parent.fork("c", at_version=3)
    event = child.events()[0].event
    assert isinstance(event, SessionForked)
    assert event.parent_version == 3
    assert child.messages == parent.as_of(version=3) == [*TURN, _tool_exchange()[0]]
    assert parent.messages == []
    child.add_ai_message("continued")
    assert child.messages == [*TURN, _tool_exchange()[0], AIMessage(content="continued")]
    assert child.as_of(version=1) == [*TURN, _tool_exchange()[0]]
    assert child.as_of(version=0) == []


def test_fork_at_version_zero_is_an_empty_branch(store: EventStore) -> None:
    """A fork at version 0 holds only its SessionForked event and no messages."""
    parent = ChatHistory("p", store)
    parent.add_messages(TURN)
    child = parent.fork("c", at_version=0)
    assert child.version == 1
    assert child.messages == []


def test_fork_of_a_fork_chains_parents(store: EventStore) -> None:
    """A fork of a fork names its direct parent and carries the whole inherited history."""
    root = ChatHistory("root", store)
    root.add_messages(TURN)
    middle = root.fork("middle")
    middle.add_user_message("m")
    leaf = middle.fork("leaf")
    event = leaf.events()[0].event
    assert isinstance(event, SessionForked)
    assert event.parent == {"session_id": "middle"}
    assert event.parent_version == 2
    assert leaf.messages == [*TURN, HumanMessage(content="m")]


# -- URLs and the shared store -------------------------------------------------------------


def test_url_histories_share_one_store_per_url(
    db_url: str, fresh_shared_stores: dict[str, EventStore]
) -> None:
    """ChatHistory(key, url) uses one shared store per URL per process."""
    a = ChatHistory("a", db_url)
    b = ChatHistory(SessionKey(user_id="1"), db_url)
    assert a.store is b.store
    assert shared_store(db_url) is a.store
    assert list(fresh_shared_stores) == [db_url]
    a.add_messages(TURN)
    assert ChatHistory("a", db_url).messages == TURN


def test_different_urls_get_different_stores(
    tmp_path: Path, fresh_shared_stores: dict[str, EventStore]
) -> None:
    """Two URLs give two stores, and their sessions do not mix."""
    first = ChatHistory("s", f"sqlite:///{tmp_path / 'one.db'}")
    second = ChatHistory("s", f"sqlite:///{tmp_path / 'two.db'}")
    assert first.store is not second.store
    first.add_messages(TURN)
    assert second.messages == []


def test_url_history_sees_writes_through_an_explicit_store(
    db_url: str, fresh_shared_stores: dict[str, EventStore]
) -> None:
    """A history opened by URL reads what another store on the same file wrote."""
    with open_store(db_url) as other:
        ChatHistory("s", other).add_messages(TURN)
        assert ChatHistory("s", db_url).messages == TURN


def test_no_url_uses_the_environment_then_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_shared_stores: dict[str, EventStore]
) -> None:
    """ChatHistory(key) opens $CHATLEDGER_URL, else ./chatledger.db."""
    ChatHistory("s").add_messages(TURN)
    assert (tmp_path / "chatledger.db").exists()
    env_url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("CHATLEDGER_URL", env_url)
    from_env = ChatHistory("s")
    assert from_env.store.url == env_url
    assert from_env.messages == []
