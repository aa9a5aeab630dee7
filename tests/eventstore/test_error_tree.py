"""One error tree: whatever goes wrong, chatledger raises a ChatledgerError, names what is wrong,
and leaves the stored data as it was; whatever append accepts, read returns equal."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    AIMessage,
    ChatledgerError,
    EventStore,
    HumanMessage,
    InvalidInputError,
    MessageAppended,
    StoreError,
    open_store,
)

HI = [MessageAppended(message=HumanMessage("hi"))]


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("where", ["content", "meta", "additional_kwargs"])
def test_deep_nesting_is_invalid_input_and_writes_nothing(store: EventStore, where: str) -> None:
    """1,000+ levels of nesting in content, meta or kwargs raise InvalidInputError, not
    RecursionError, and write nothing."""
    deep = nested(5000)
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        if where == "content":
            store.append("s", [MessageAppended(message=HumanMessage(
                content=[{"type": "text", "text": "x", "extra": deep}]))])
        elif where == "meta":
            store.append("s", HI, meta={"deep": deep})
        else:
            store.append("s", [MessageAppended(message=HumanMessage(
                "x", additional_kwargs={"deep": deep}))])
    assert store.version("s") == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_naming_the_field(store: EventStore, value: float) -> None:
    """NaN and ±inf in meta or additional_kwargs raise InvalidInputError naming the field
    (they used to be stored silently as null)."""
    with pytest.raises(InvalidInputError, match=r"meta\['run'\]\['score'\].*NaN or infinity"):
        store.append("s", HI, meta={"run": {"score": value}})
    with pytest.raises(InvalidInputError, match=r"additional_kwargs\['logprob'\]"):
        store.append("s", [MessageAppended(message=AIMessage(
            "x", additional_kwargs={"logprob": value}))])
    assert store.version("s") == 0


def test_values_that_would_change_are_refused(store: EventStore) -> None:
    """A tuple or a non-text key would read back as something else: InvalidInputError."""
    with pytest.raises(InvalidInputError, match=r"meta\['pair'\] is tuple"):
        store.append("s", HI, meta={"pair": (1, 2)})
    with pytest.raises(InvalidInputError, match="not text"):
        store.append("s", HI, meta={1: "one"})  # type: ignore[dict-item]
    assert store.version("s") == 0


@pytest.mark.parametrize("call", [
    lambda s: s.read("s", after_version=2**63),
    lambda s: s.read("s", until_version=2**64),
    lambda s: s.read_all(after_position=2**63),
    lambda s: s.read_all(limit=2**63),
    lambda s: s.sessions(limit=2**63),
    lambda s: s.load_history_at("s", version=2**70),
])
def test_integers_beyond_64_bits_are_invalid_input(store: EventStore, call: Any) -> None:
    """Versions, positions and limits of 2**63 or more raise InvalidInputError, not
    OverflowError."""
    store.append("s", HI)
    with pytest.raises(InvalidInputError, match="2\\*\\*63"):
        call(store)


def test_the_largest_64_bit_values_are_accepted(store: EventStore) -> None:
    """2**63 - 1 is a valid bound: reads with it return what is there."""
    store.append("s", HI)
    assert len(store.read("s", until_version=2**63 - 1)) == 1
    assert store.read("s", after_version=2**63 - 1) == []
    # read_all may hold back a PostgreSQL event behind another client's open transaction
    # (see the horizon in the README), so only what it returns is checked.
    assert all(r.version == 1 for r in store.read_all(limit=2**63 - 1))


def damage(path: Path, column: str, value: str) -> None:
    """Overwrite one stored column of the first event, past the append-only trigger."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = 1", (value,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("column", "value"), [
    ("recorded_at", "not a time"),
    ("recorded_at", "2026-01-01T00:00:00"),
    ("meta", "{not json"),
    ("meta", "[1, 2]"),
    ("data", '{"type": "message_appended", "message": 5}'),
    ("data", "[" * 5000 + "]" * 5000),
])
def test_a_damaged_row_raises_store_error_naming_it(tmp_path: Path, column: str,
                                                    value: str) -> None:
    """A stored row with a corrupt time, meta or payload raises StoreError naming the stream,
    version and position (not ValueError or msgspec.DecodeError)."""
    path = tmp_path / "log.db"
    with open_store(f"sqlite:///{path}") as store:
        store.append("s", HI)
    damage(path, column, value)
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        for read in (lambda: store.read("s"), store.read_all):
            with pytest.raises(StoreError, match="stream 'session_id=s', version 1, position 1"):
                read()


@pytest.mark.postgres
def test_a_damaged_postgres_row_raises_store_error_naming_it(pg: Any) -> None:
    """The same on PostgreSQL: a corrupt recorded_at is a StoreError naming the row."""
    pg.append("s", HI)
    import psycopg

    with psycopg.connect(pg._target.conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        conn.execute("UPDATE events SET recorded_at = 'garbage'")
    with pytest.raises(StoreError, match="stream 'session_id=s', version 1"):
        pg.read("s")


def flip_bytes_in_event_pages(path: Path, seed: int) -> None:
    """Flip a few bytes inside the pages that hold the events table."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = [r[0] for r in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'events'")] if _has_dbstat(conn) else []
    conn.close()
    data = bytearray(path.read_bytes())
    if not pages:  # no dbstat: the events live in the file's later pages
        pages = list(range(2, len(data) // page_size + 1))
    for i in range(4):
        page = pages[(seed * 7 + i) % len(pages)]
        offset = (page - 1) * page_size + (seed * 131 + i * 977) % page_size
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _has_dbstat(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1")
    except sqlite3.Error:
        return False
    return True


@pytest.mark.parametrize("seed", range(12))
def test_byte_flips_in_event_pages_raise_only_chatledger_errors(tmp_path: Path,
                                                                seed: int) -> None:
    """Whatever bytes are flipped in the events' pages, open, read, history and verify either
    work (verify then names the damage) or raise a ChatledgerError, never another error."""
    path = tmp_path / "log.db"
    with open_store(f"sqlite:///{path}") as store:
        for i in range(30):
            store.append(f"s{i % 3}", [MessageAppended(message=HumanMessage(f"message {i}"))],
                         meta={"i": i})
        store.close()
    flip_bytes_in_event_pages(path, seed)
    try:
        with open_store(f"sqlite:///{path}", readonly=True) as store:
            for call in (store.read_all, lambda: store.read("s1"), store.sessions,
                         lambda: store.load_history("s2"), store.verify):
                try:
                    call()
                except ChatledgerError:
                    pass
    except ChatledgerError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.binary(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(content=st.text(), kwargs=st.dictionaries(st.text(max_size=8), anything, max_size=3),
       meta=st.dictionaries(st.text(max_size=8), anything, max_size=3))
def test_whatever_append_accepts_read_returns_equal(store: EventStore, content: str,
                                                    kwargs: dict[str, Any],
                                                    meta: dict[str, Any]) -> None:
    """Any content, kwargs and meta: append either refuses it with InvalidInputError and writes
    nothing, or read returns an equal event and meta."""
    key = "prop"
    before = store.version(key)
    event = MessageAppended(message=AIMessage(content, additional_kwargs=kwargs))
    try:
        result = store.append(key, [event], meta=meta)
    except InvalidInputError:
        assert store.version(key) == before
        return
    (record,) = store.read(key, after_version=result.version - 1)
    assert record.event == event
    assert record.meta == meta


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(kwargs=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_json_values_are_always_accepted_and_read_back_equal(store: EventStore,
                                                             kwargs: dict[str, Any]) -> None:
    """Plain JSON values (finite numbers, 64-bit integers) are never refused."""
    event = MessageAppended(message=HumanMessage("x", additional_kwargs=kwargs))
    result = store.append("json", [event], meta=kwargs)
    (record,) = store.read("json", after_version=result.version - 1)
    assert (record.event, record.meta) == (event, kwargs)
