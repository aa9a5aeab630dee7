"""RunnableWithMessageHistory: the LangChain behaviour we keep (reference sections 1.2-1.9)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    InvalidInputError,
    Message,
    RunRecorded,
    SystemMessage,
)
from chatledger.projections import ChatHistory, InMemoryChatMessageHistory
from chatledger.runtime import (
    ConfigurableFieldSpec,
    RunnableLambda,
    RunnableWithMessageHistory,
)
from chatledger.runtime.models import FakeChatModel


class ListHistory:
    """A minimal user history with ``messages`` and ``add_messages`` (LangChain's shape)."""

    def __init__(self, messages: list[Message] | None = None) -> None:
        self.messages: list[Message] = list(messages or [])
        self.saves: list[list[Message]] = []

    def add_messages(self, messages: list[Message]) -> None:
        self.saves.append(list(messages))
        self.messages.extend(messages)


class Sessions:
    """A factory of ListHistory objects per session id, recording each call's arguments."""

    def __init__(self, seed: list[Message] | None = None) -> None:
        self.seed = seed or []
        self.by_id: dict[Any, ListHistory] = {}
        self.calls: list[Any] = []

    def __call__(self, session_id: Any) -> ListHistory:
        self.calls.append(session_id)
        return self.by_id.setdefault(session_id, ListHistory(self.seed))


SEED = [HumanMessage("h0"), AIMessage("a0")]


def _echo(seen: list[Any]) -> RunnableLambda:
    def run(x: Any) -> str:
        seen.append(x)
        return "out"

    return RunnableLambda(run)


# -- 1.2 config resolution -------------------------------------------------------------------

def test_top_level_session_id_moves_into_configurable(db_url: str) -> None:
    """``invoke(x, {"session_id": "a"})`` behaves like ``{"configurable": {"session_id": "a"}}``."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda session_id: ChatHistory(session_id, db_url))
    chain.invoke("hi", {"session_id": "a"})
    assert ChatHistory("a", db_url).messages[0] == HumanMessage("hi")


@pytest.mark.parametrize("config", [None, {}, {"configurable": {}}])
def test_missing_session_id_names_the_missing_and_expected_keys(config: Any) -> None:
    """Without a session id the error (a ValueError) lists the missing and expected keys."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), Sessions())
    with pytest.raises(ValueError) as info:
        chain.invoke("hi", config)
    assert isinstance(info.value, InvalidInputError)
    text = str(info.value)
    assert text.startswith(
        "Missing keys ['session_id'] in config['configurable'] Expected keys are ['session_id']. "
        "When using via .invoke() or .stream(), pass in a config; e.g., chain.invoke("
    )
    assert "{'configurable': {'session_id': '[your-value-here]'}}" in text


def test_missing_keys_lists_all_of_them_sorted() -> None:
    """With several factory fields, every missing one is named, sorted."""

    def factory(user_id: str, conversation_id: str) -> ListHistory:
        return ListHistory()

    specs = [ConfigurableFieldSpec(id="user_id", annotation=str),
             ConfigurableFieldSpec(id="conversation_id", annotation=str)]
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), factory, history_factory_config=specs)
    with pytest.raises(InvalidInputError, match=r"Missing keys \['conversation_id', 'user_id'\]"):
        chain.invoke("hi", {"configurable": {"other": 1}})
    with pytest.raises(InvalidInputError, match=r"Missing keys \['conversation_id'\]"):
        chain.invoke("hi", {"configurable": {"user_id": "u"}})


def test_zero_argument_factory_needs_no_config() -> None:
    """A factory without parameters is called with nothing and no session config is required."""
    history = ListHistory()
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda: history)
    chain.invoke("hi")
    assert [m.text for m in history.messages] == ["hi", "r"]


def test_single_key_is_passed_positionally_whatever_the_parameter_name() -> None:
    """With one spec the value is passed positionally, so the parameter name does not matter."""
    seen: list[str] = []

    def factory(thread: str) -> ListHistory:
        seen.append(thread)
        return ListHistory()

    chain = RunnableWithMessageHistory(
        FakeChatModel(["r"]), factory,
        history_factory_config=[ConfigurableFieldSpec(id="thread_id", annotation=str)],
    )
    chain.invoke("hi", {"configurable": {"thread_id": "t1"}})
    assert seen == ["t1"]


def test_several_keys_must_match_parameter_names() -> None:
    """With several specs, names that differ from the factory's parameters raise a ValueError."""

    def factory(user_id: str, conversation_id: str, extra: Any = None) -> ListHistory:
        return ListHistory()

    specs = [ConfigurableFieldSpec(id="user_id", annotation=str),
             ConfigurableFieldSpec(id="conversation_id", annotation=str)]
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), factory, history_factory_config=specs)
    with pytest.raises(ValueError, match=(
        r"Expected keys \['conversation_id', 'user_id'\] do not match parameter names "
        r"\['conversation_id', 'extra', 'user_id'\] of get_session_history\."
    )):
        chain.invoke("hi", {"configurable": {"user_id": "u", "conversation_id": "c"}})


def test_several_keys_are_passed_by_keyword() -> None:
    """Matching specs are passed by keyword, so keyword-only factories work."""
    seen: list[tuple[str, str]] = []

    def factory(*, conversation_id: str, user_id: str) -> ListHistory:
        seen.append((user_id, conversation_id))
        return ListHistory()

    specs = [ConfigurableFieldSpec(id="user_id", annotation=str),
             ConfigurableFieldSpec(id="conversation_id", annotation=str)]
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), factory, history_factory_config=specs)
    chain.invoke("hi", {"configurable": {"user_id": "u", "conversation_id": "c"}})
    assert seen == [("u", "c")]


def test_none_value_counts_as_present_and_defaults_are_not_applied() -> None:
    """A key given as None reaches the factory; a spec's default never fills a missing key."""
    sessions = Sessions()
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), sessions)
    chain.invoke("hi", {"configurable": {"session_id": None}})
    assert sessions.calls == [None]
    spec = ConfigurableFieldSpec(id="session_id", annotation=str, default="fallback")
    with pytest.raises(InvalidInputError, match="Missing keys"):
        RunnableWithMessageHistory(FakeChatModel(["r"]), sessions,
                                   history_factory_config=[spec]).invoke("hi")


def test_message_history_and_configurable_reach_inner_runnables() -> None:
    """The inner runnable's config holds ``message_history`` and the session keys."""
    seen: list[dict[str, Any]] = []
    sessions = Sessions()

    def inner(messages: list[Message], config: dict[str, Any]) -> str:
        seen.append(config["configurable"])
        return "ok"

    chain = RunnableWithMessageHistory(RunnableLambda(lambda x: x) | RunnableLambda(inner), sessions)
    chain.invoke("hi", {"configurable": {"session_id": "s", "message_history": "caller's",
                                         "extra": 7}})
    assert seen[0]["message_history"] is sessions.by_id["s"]
    assert seen[0]["session_id"] == "s"
    assert seen[0]["extra"] == 7


def test_with_config_supplies_the_session() -> None:
    """``with_config(configurable={"session_id": ...})`` binds the session."""
    sessions = Sessions()
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), sessions).with_config(
        configurable={"session_id": "bound"}
    )
    chain.invoke("hi")
    assert sessions.calls == ["bound"]


def test_config_specs_default_and_replaced() -> None:
    """The default spec is ``session_id``; ``history_factory_config`` replaces it."""
    default = RunnableWithMessageHistory(FakeChatModel(["r"]), Sessions()).config_specs
    assert default == [ConfigurableFieldSpec(id="session_id", annotation=str, name="Session ID",
                                             description="Unique identifier for a session.",
                                             default="", is_shared=True)]
    spec = ConfigurableFieldSpec(id="thread_id", annotation=str)
    custom = RunnableWithMessageHistory(FakeChatModel(["r"]), Sessions(),
                                        history_factory_config=[spec]).config_specs
    assert custom == [spec]


# -- 1.3 input shapes ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("given", "new"),
    [
        ("s", [HumanMessage("s")]),
        (HumanMessage("m"), [HumanMessage("m")]),
        ([HumanMessage("a"), HumanMessage("b")], [HumanMessage("a"), HumanMessage("b")]),
        ((HumanMessage("t"),), [HumanMessage("t")]),
        ([[HumanMessage("n")]], [HumanMessage("n")]),
        ([], []),
        ({"question": "hi"}, [HumanMessage("hi")]),
    ],
)
def test_input_shapes_without_keys(given: Any, new: list[Message]) -> None:
    """With no keys the inner runnable gets history + new messages; new + output are saved."""
    seen: list[Any] = []
    sessions = Sessions(SEED)
    RunnableWithMessageHistory(_echo(seen), sessions).invoke(given, {"session_id": "s"})
    assert seen[0] == [*SEED, *new]
    assert sessions.by_id["s"].saves == [[*new, AIMessage("out")]]


def test_multi_key_dict_without_keys_uses_input() -> None:
    """A dict with several keys and no key configured reads the ``input`` key, else raises."""
    seen: list[Any] = []
    sessions = Sessions(SEED)
    chain = RunnableWithMessageHistory(_echo(seen), sessions)
    chain.invoke({"input": "hi", "x": 1}, {"session_id": "s"})
    assert seen[0] == [*SEED, HumanMessage("hi")]
    with pytest.raises(InvalidInputError, match="'input'"):
        chain.invoke({"a": "hi", "b": 1}, {"session_id": "s"})
    assert seen[1:] == []


def test_input_key_only_replaces_the_value_with_history_plus_new() -> None:
    """With only input_messages_key the value under it becomes history + new messages."""
    seen: list[Any] = []
    sessions = Sessions(SEED)
    chain = RunnableWithMessageHistory(_echo(seen), sessions, input_messages_key="q")
    given = {"q": "hi", "ctx": 1}
    chain.invoke(given, {"session_id": "s"})
    assert seen[0] == {"q": [*SEED, HumanMessage("hi")], "ctx": 1}
    assert given == {"q": "hi", "ctx": 1}
    chain.invoke({"q": [SystemMessage("sys"), HumanMessage("h")]}, {"session_id": "t"})
    assert sessions.by_id["t"].saves[0][:2] == [SystemMessage("sys"), HumanMessage("h")]


def test_keyed_wrapper_needs_a_dict_input() -> None:
    """With a messages key, a list input raises InvalidInputError before the factory runs."""
    sessions = Sessions()
    chain = RunnableWithMessageHistory(_echo([]), sessions, input_messages_key="q")
    with pytest.raises(InvalidInputError, match="must be a dict"):
        chain.invoke([HumanMessage("x")], {"session_id": "s"})
    assert sessions.calls == []


def test_history_key_adds_history_and_overwrites_a_given_value() -> None:
    """With a history key the input is kept and the loaded history is added under that key."""
    seen: list[Any] = []
    sessions = Sessions(SEED)
    chain = RunnableWithMessageHistory(_echo(seen), sessions, input_messages_key="q",
                                       history_messages_key="h")
    chain.invoke({"q": "hi", "ctx": 1}, {"session_id": "s"})
    chain.invoke({"q": "yo", "h": ["X"]}, {"session_id": "t"})
    chain.invoke({"q": [HumanMessage("a"), HumanMessage("b")]}, {"session_id": "u"})
    assert seen[0] == {"q": "hi", "ctx": 1, "h": SEED}
    assert seen[1] == {"q": "yo", "h": SEED}
    assert sessions.by_id["u"].saves == [[HumanMessage("a"), HumanMessage("b"), AIMessage("out")]]


def test_history_key_only_reads_the_input_key() -> None:
    """With only a history key, a multi-key dict's new message comes from ``input``."""
    seen: list[Any] = []
    sessions = Sessions(SEED)
    chain = RunnableWithMessageHistory(_echo(seen), sessions, history_messages_key="h")
    chain.invoke({"input": "hi", "x": 1}, {"session_id": "s"})
    assert seen[0] == {"input": "hi", "x": 1, "h": SEED}
    assert sessions.by_id["s"].saves == [[HumanMessage("hi"), AIMessage("out")]]


def test_bad_input_values_raise() -> None:
    """A number, a list of several lists, or a non-message item raise InvalidInputError."""
    chain = RunnableWithMessageHistory(_echo([]), Sessions())
    for bad in (5, [[HumanMessage("a")], [HumanMessage("b")]], [HumanMessage("a"), "b"]):
        with pytest.raises(InvalidInputError):
            chain.invoke(bad, {"session_id": "s"})


# -- 1.5 output shapes -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("returned", "saved", "key"),
    [
        ("str", [AIMessage("str")], None),
        (AIMessage("msg"), [AIMessage("msg")], None),
        ([AIMessage("l1"), AIMessage("l2")], [AIMessage("l1"), AIMessage("l2")], None),
        ((AIMessage("t"),), [AIMessage("t")], None),
        ({"output": "o"}, [AIMessage("o")], None),
        ({"answer": AIMessage("a")}, [AIMessage("a")], None),
        ({"output": "x", "extra": 1}, [AIMessage("x")], None),
        ({"answer": "A", "ctx": "C"}, [AIMessage("A")], "answer"),
        (HumanMessage("h"), [HumanMessage("h")], None),
    ],
)
def test_output_shapes_and_output_returned_unchanged(returned: Any, saved: list[Message],
                                                     key: str | None) -> None:
    """Each output shape saves the table's messages, and the caller gets the output as is."""
    sessions = Sessions()
    chain = RunnableWithMessageHistory(RunnableLambda(lambda _: returned), sessions,
                                       output_messages_key=key)
    out = chain.invoke("in", {"session_id": "s"})
    assert out is returned
    assert sessions.by_id["s"].saves == [[HumanMessage("in"), *saved]]


@pytest.mark.parametrize("returned", [123, False, {"a": "x", "b": 1}, None])
def test_unsaveable_outputs_raise(returned: Any) -> None:
    """An output with no messages to save raises InvalidInputError and saves nothing."""
    sessions = Sessions()
    chain = RunnableWithMessageHistory(RunnableLambda(lambda _: returned), sessions)
    with pytest.raises(InvalidInputError):
        chain.invoke("in", {"session_id": "s"})
    assert sessions.by_id["s"].saves == []


def test_chat_model_output_is_saved_with_its_id() -> None:
    """Wrapping a chat model saves its AIMessage including the model's id."""
    sessions = Sessions()
    reply = RunnableWithMessageHistory(FakeChatModel(["r"]), sessions).invoke("q", {"session_id": "s"})
    assert reply.id is not None
    assert sessions.by_id["s"].messages[-1] == reply


def test_chunk_output_is_saved_as_a_whole_message() -> None:
    """An AIMessageChunk returned by invoke is saved as the AIMessage it stands for."""
    sessions = Sessions()
    RunnableWithMessageHistory(RunnableLambda(lambda _: AIMessageChunk("c")), sessions).invoke(
        "q", {"session_id": "s"})
    assert type(sessions.by_id["s"].messages[-1]) is AIMessage


# -- 1.4 saving: one write after success -----------------------------------------------------

def test_one_save_of_input_and_output_before_invoke_returns(db_url: str) -> None:
    """A turn is one append of input + output (plus its run and model call), done when invoke returns."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r"]), lambda session_id: ChatHistory(session_id, db_url))
    chain.invoke([HumanMessage("a"), HumanMessage("b")], {"session_id": "s"})
    records = ChatHistory("s", db_url).events()
    assert len({r.position for r in records}) == 5
    assert len({r.meta["run_id"] for r in records}) == 1
    assert [type(r.event).__name__ for r in records] == [
        "MessageAppended", "MessageAppended", "MessageAppended", "RunRecorded", "ModelCalled"]


# -- 1.8 batch -------------------------------------------------------------------------------

def test_batch_with_a_list_of_configs_uses_a_session_per_item(db_url: str) -> None:
    """A list of configs gives each batch item its own session."""
    model = FakeChatModel(["r"])
    chain = RunnableWithMessageHistory(model, lambda session_id: ChatHistory(session_id, db_url))
    chain.invoke("earlier", {"session_id": "a"})
    out = chain.batch(["one", "two"], [{"configurable": {"session_id": "a"}},
                                       {"configurable": {"session_id": "b"}}])
    assert [o.content for o in out] == ["r", "r"]
    assert [m.text for m in ChatHistory("a", db_url).messages] == ["earlier", "r", "one", "r"]
    assert [m.text for m in ChatHistory("b", db_url).messages] == ["two", "r"]


def test_batch_checks_every_config_before_running() -> None:
    """One item without a session id fails the whole batch before anything runs."""
    seen: list[Any] = []
    sessions = Sessions()
    chain = RunnableWithMessageHistory(_echo(seen), sessions)
    with pytest.raises(InvalidInputError, match="Missing keys"):
        chain.batch(["a", "b"], [{"session_id": "x"}, {}])
    assert seen == []
    assert sessions.calls == []


# -- 1.9 async -------------------------------------------------------------------------------

def test_ainvoke_and_abatch_remember(db_url: str) -> None:
    """The async path loads and saves the same way as the sync one."""
    chain = RunnableWithMessageHistory(FakeChatModel(["r1", "r2"]),
                                       lambda session_id: ChatHistory(session_id, db_url))

    async def run() -> None:
        await chain.ainvoke("first", {"session_id": "s"})
        await chain.abatch(["x", "y"], [{"session_id": "p"}, {"session_id": "q"}])

    asyncio.run(run())
    assert [m.text for m in ChatHistory("s", db_url).messages] == ["first", "r1"]
    assert len(ChatHistory("p", db_url).messages) == 2
    assert len(ChatHistory("q", db_url).messages) == 2


def test_an_in_memory_history_records_each_turn_with_its_run() -> None:
    """InMemoryChatMessageHistory as a factory result is a ledger: the turn is one append with its RunRecorded."""
    history = InMemoryChatMessageHistory()
    chain = RunnableWithMessageHistory(RunnableLambda(lambda m: f"{len(m)} seen"),
                                       lambda: history)
    chain.invoke("hi")
    asyncio.run(chain.ainvoke("again"))
    assert history.messages == [HumanMessage("hi"), AIMessage("1 seen"),
                                HumanMessage("again"), AIMessage("3 seen")]
    assert sum(isinstance(r.event, RunRecorded) for r in history.events()) == 2
