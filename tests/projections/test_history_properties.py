"""Property tests: over random histories the projection always equals a plain fold of the log.

Each example runs a random sequence of appends (mixed message types, tool calls and their
results), clears, forks, lawful erasures, tags, recorded runs and mixed multi-event appends on
a few keys, then checks that the incremental projection, the rebuilt projection and
``fold(store.read(key))`` agree, that ``as_of`` matches the fold at every version, that windows
keep tool exchanges whole within their budget, and that the catalog agrees with the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    EventStore,
    HistoryCleared,
    HumanMessage,
    InvalidInputError,
    Message,
    MessageAppended,
    Record,
    RunRecorded,
    SessionKey,
    SessionTagged,
    SystemMessage,
    ToolMessage,
)
from chatledger.projections import ChatHistory, approximate_tokens, fold, messages_of, window
from tests.projections.test_window import expected_window_start, has_no_orphaned_results
from tests.strategies import TEXT

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


KIND = st.sampled_from(["human", "ai", "ai_tools", "tool", "tool", "system"])
MESSAGE_SPEC = st.tuples(KIND, TEXT, st.integers(1, 2), st.booleans())
TAG = st.sampled_from(["red", "green", "blue"])
PICK = st.integers(0, 1_000)
# Events that carry content, the only ones erase() may scrub; it refuses the others.
CONTENT_TYPES = ("message_appended", "session_forked", "run_recorded", "run_recorded_v2")

BY_NAME: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "append": st.tuples(st.just("append"), PICK, st.lists(MESSAGE_SPEC, min_size=1, max_size=3)),
    "clear": st.tuples(st.just("clear"), PICK),
    "fork": st.tuples(st.just("fork"), PICK, st.none() | PICK),
    "erase": st.tuples(st.just("erase"), PICK, PICK),
    "tag": st.tuples(st.just("tag"), PICK, st.lists(TAG, max_size=2), st.lists(TAG, max_size=2)),
    "run": st.tuples(st.just("run"), PICK),
    "mixed": st.tuples(st.just("mixed"), PICK, st.lists(
        st.sampled_from(["message", "clear", "tag"]), min_size=2, max_size=4)),
}
# About half the operations append messages; the rest spread over everything else.
OPERATION = st.sampled_from(["append"] * 6 + sorted(set(BY_NAME) - {"append"})).flatmap(
    BY_NAME.__getitem__)
OPERATIONS = st.lists(OPERATION, min_size=10, max_size=60)



def _characters(message: Message) -> int:
    return 1 + len(message.text)


COUNTERS: dict[str, Callable[[Message], int]] = {
    "approximate": approximate_tokens, "characters": _characters}


@dataclass
class Scenario:
    """The keys of one example and what is needed to generate realistic messages for them."""

    store: EventStore
    keys: list[SessionKey]
    run: str
    pending: dict[SessionKey, list[str]] = field(default_factory=dict)
    forks: int = 0
    calls: int = 0

    def key(self, pick: int) -> SessionKey:
        return self.keys[pick % len(self.keys)]

    def message(self, key: SessionKey, spec: tuple[str, str, int, bool]) -> Message:
        """Build one message; tool results answer the key's pending calls, in order."""
        kind, text, n_calls, blocks = spec
        content: Any = [{"type": "text", "text": text}] if blocks else text
        pending = self.pending.setdefault(key, [])
        if kind == "tool" and pending:
            return ToolMessage(content=text, tool_call_id=pending.pop(0))
        pending.clear()
        if kind == "ai_tools":
            ids = []
            for _ in range(n_calls):
                self.calls += 1
                ids.append(f"call-{self.calls}")
            pending.extend(ids)
            return AIMessage(content=content, tool_calls=[
                {"name": "lookup", "args": {"q": text, "n": i}, "id": call_id}
                for i, call_id in enumerate(ids)])
        if kind == "ai":
            return AIMessage(content=content)
        if kind == "system":
            return SystemMessage(content=content)
        return HumanMessage(content=content)

    def apply(self, operation: tuple[Any, ...]) -> None:
        """Carry out one generated operation against the store."""
        store = self.store
        match operation:
            case ("append", pick, specs):
                key = self.key(pick)
                ChatHistory(key, store).add_messages([self.message(key, s) for s in specs])
            case ("clear", pick):
                ChatHistory(self.key(pick), store).clear()
            case ("fork", pick, at):
                source = ChatHistory(self.key(pick), store)
                self.forks += 1
                target = SessionKey(run=self.run, user_id="u1", conversation_id=f"f{self.forks}")
                at_version = None if at is None else at % (source.version + 1)
                source.fork(target, at_version=at_version)
                self.keys.append(target)
            case ("erase", pick, which):
                key = self.key(pick)
                records = store.read(key)
                if not records:
                    return
                target = records[which % len(records)]
                if target.type in CONTENT_TYPES:
                    store.erase(key, versions=[target.version])
                else:
                    with pytest.raises(InvalidInputError, match=f"version {target.version}"):
                        store.erase(key, versions=[target.version])
                    assert store.version(key) == len(records)
            case ("tag", pick, added, removed):
                store.append(self.key(pick), [SessionTagged(added=added, removed=removed)])
            case ("run", pick):
                key = self.key(pick)
                store.append(key, [RunRecorded(run_id=str(uuid.uuid4()), status="ok",
                                               input=[HumanMessage(content="in")],
                                               output=[AIMessage(content="out")],
                                               history_version=store.version(key))])
            case ("mixed", pick, parts):
                key = self.key(pick)
                self.pending.pop(key, None)
                events: list[Any] = []
                for i, part in enumerate(parts):
                    if part == "message":
                        events.append(MessageAppended(message=HumanMessage(content=f"m{i}")))
                    elif part == "clear":
                        events.append(HistoryCleared())
                    else:
                        events.append(SessionTagged(added=[f"t{i}"], removed=["red"]))
                store.append(key, events)
            case _:
                raise AssertionError(f"unknown operation {operation!r}")


def _scenario(store: EventStore) -> Scenario:
    run = uuid.uuid4().hex
    keys = [SessionKey(run=run, user_id=u, conversation_id=c)
            for u, c in (("u1", "c1"), ("u1", "c2"), ("u2", "c1"))]
    return Scenario(store=store, keys=keys, run=run)


def _expected_tags(records: list[Record]) -> list[str]:
    tags: set[str] = set()
    for record in records:
        if isinstance(record.event, SessionTagged):
            tags |= set(record.event.added)
            tags -= set(record.event.removed)
    return sorted(tags)


def _check_fold(store: EventStore, keys: list[SessionKey]) -> dict[SessionKey, Any]:
    """(a) projection == fold, (b) as_of == fold of each prefix, (d) catalog == history.

    Returns everything the projections answered, to compare before and after a rebuild.
    """
    answers: dict[SessionKey, Any] = {}
    for key in keys:
        records = store.read(key)
        head = len(records)
        assert [r.version for r in records] == list(range(1, head + 1))
        version, messages = store.load_history(key)
        assert version == head == store.version(key)
        assert messages == messages_of(fold(records))
        as_of = [store.load_history_at(key, version=v) for v in range(head + 1)]
        for v in range(head + 1):
            assert as_of[v] == (v, messages_of(fold(records[:v]))), v
        info = store.session(key)
        answers[key] = (version, messages, as_of, info)
        if head == 0:
            assert info is None
            continue
        assert info is not None
        assert info.version == head
        assert info.message_count == len(messages)
        assert info.tags == _expected_tags(records)
    return answers


def _check_windows(history: ChatHistory) -> None:
    """(c) windows are the longest suffixes within budget that hold no tool result without its
    call."""
    messages = history.messages
    limits: list[dict[str, Any]] = [{"last": n} for n in (1, 2, 3, 5, 8)]
    limits += [{"max_tokens": t, "counter": c} for t in (4, 9, 20, 45, 120) for c in COUNTERS]
    limits += [{"last": 3, "max_tokens": 20, "counter": "approximate"}]
    for limit in limits:
        counter = COUNTERS.get(limit.get("counter", "approximate"), approximate_tokens)
        options = {**limit, "counter": counter} if "max_tokens" in limit else limit
        kept = window(messages, **options)
        if limit in (limits[0], limits[5]):
            assert kept == history.window(**options)
        start = len(messages) - len(kept)
        assert kept == messages[start:], "a window is a suffix"
        if "last" in limit:
            assert len(kept) <= limit["last"]
        if "max_tokens" in limit:
            assert sum(counter(m) for m in kept) <= limit["max_tokens"]
        if kept:
            assert not isinstance(kept[0], ToolMessage)
        assert has_no_orphaned_results(kept), "a tool result is in the window but its call is not"
        assert start == expected_window_start(messages, last=limit.get("last"),
                                              max_tokens=limit.get("max_tokens"),
                                              counter=counter)


# Fewer examples here: every rebuild replays the whole log, which grows with each example.
@settings(PROPERTY_SETTINGS, max_examples=40)
@given(operations=OPERATIONS)
def test_incremental_rebuilt_and_folded_histories_agree(
    store: EventStore, operations: list[tuple[Any, ...]]
) -> None:
    """For every key, load_history == the history after rebuild() == fold(store.read(key))."""
    scenario = _scenario(store)
    for operation in operations:
        scenario.apply(operation)
    before = _check_fold(store, scenario.keys)
    store.rebuild()
    assert _check_fold(store, scenario.keys) == before
    assert store.verify().ok


@PROPERTY_SETTINGS
@given(operations=OPERATIONS)
def test_windows_keep_tool_exchanges_and_budgets(
    store: EventStore, operations: list[tuple[Any, ...]]
) -> None:
    """window(last=N) and window(max_tokens=M) are budget-bound suffixes that keep tool pairs."""
    scenario = _scenario(store)
    for operation in operations:
        scenario.apply(operation)
    for key in scenario.keys:
        _check_windows(ChatHistory(key, store))


@PROPERTY_SETTINGS
@given(operations=OPERATIONS)
def test_catalog_matches_every_session(
    store: EventStore, operations: list[tuple[Any, ...]]
) -> None:
    """The catalog lists exactly the sessions with events, with their version, count and tags."""
    scenario = _scenario(store)
    for operation in operations:
        scenario.apply(operation)
    rows = {r.key: r for r in store.sessions(limit=1000, run=scenario.run)}
    assert set(rows) == {k for k in scenario.keys if store.version(k) > 0}
    for key, row in rows.items():
        version, messages = store.load_history(key)
        assert (row.version, row.message_count) == (version, len(messages))
        assert row.tags == _expected_tags(store.read(key))
        assert row.created_at <= row.last_active
        assert row.last_active == store.read(key)[-1].recorded_at
    assert {r.key for r in store.sessions(limit=1000, run=scenario.run, user_id="u2")} == {
        k for k in rows if k.user_id == "u2"}

