"""Session keys: canonical, collision-free stream ids, exact matching, clear errors."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatledger.eventstore import (
    EventStore,
    HumanMessage,
    InvalidKeyError,
    MessageAppended,
    SessionKey,
)

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in ("limit", "after"))  # reserved: sessions()'s own arguments
# Any text a key may hold: no control characters (Cc), no lone surrogates (Cs); '=', '/' and
# '%' are mixed in on purpose, they are the characters the encoding has to escape.
VALUES = st.text(
    alphabet=st.one_of(
        st.sampled_from("=/%_;'\"-. "),
        st.characters(blacklist_categories=("Cc", "Cs")),
    ),
    min_size=1,
    max_size=20,
)
PARTS = st.dictionaries(NAMES, VALUES, min_size=1, max_size=4)

AWKWARD = [
    "it's \"quoted\"",
    "100%",
    "%25",
    "%2F",
    "a_b",
    "a;b",
    "a=b",
    "a/b",
    "=/%",
    "ünïcödé ✓ 日本語 🎉",
    "a--b",
    " leading and trailing ",
    "x" * 512,
]


def said(text: str) -> MessageAppended:
    """A MessageAppended event carrying a human message with ``text``."""
    return MessageAppended(message=HumanMessage(text))


def test_dash_joined_values_do_not_collide() -> None:
    """("a--b", "c") and ("a", "b--c") are different streams, unlike f"{u}--{c}"."""
    one = SessionKey(user_id="a--b", conversation_id="c")
    two = SessionKey(user_id="a", conversation_id="b--c")
    assert one != two
    assert one.stream_id != two.stream_id


def test_one_positional_value_is_the_session_id() -> None:
    """``SessionKey("abc")`` is what a plain string means wherever a key is taken; more than
    one positional value, or one beside session_id=, is refused naming the rule."""
    assert SessionKey("abc") == SessionKey(session_id="abc") == SessionKey.coerce("abc")
    assert SessionKey("abc", user_id="u") == SessionKey(session_id="abc", user_id="u")
    for args, kwargs in ((("a", "b"), {}), (("a",), {"session_id": "b"})):
        with pytest.raises(InvalidKeyError, match="one positional value at most"):
            SessionKey(*args, **kwargs)


@pytest.mark.parametrize("name", ["limit", "after"])
def test_the_catalog_querys_own_argument_names_are_not_key_parts(name: str) -> None:
    """A part named like an argument of sessions() could be stored but never filtered on: it
    is refused, naming why."""
    with pytest.raises(InvalidKeyError, match=f"{name!r} is reserved"):
        SessionKey(**{name: "5", "user_id": "a"})


def test_prefix_values_do_not_collide() -> None:
    """Values that are prefixes of each other, or contain separators, give distinct ids."""
    keys = [
        SessionKey(tenant="t1", user="u1"),
        SessionKey(tenant="t1", user="u10"),
        SessionKey(tenant="t1/u1"),
        SessionKey(tenant="t1/user=u1"),
        SessionKey(tenant="t1", user="u1/x"),
        SessionKey(tenant="t1", user="u1", x="y"),
        SessionKey(tenant="t1", user="u1/x=y"),
        SessionKey(tenant="t1%2Fuser%3Du1"),
    ]
    assert len({k.stream_id for k in keys}) == len(keys)


@settings(max_examples=75, deadline=None)
@given(PARTS, PARTS)
def test_stream_id_is_injective(a: dict[str, str], b: dict[str, str]) -> None:
    """Distinct keys always have distinct stream ids; equal keys have equal ones."""
    ka, kb = SessionKey(**a), SessionKey(**b)
    assert (a == b) == (ka == kb) == (ka.stream_id == kb.stream_id)


@settings(max_examples=75, deadline=None)
@given(PARTS)
def test_from_stream_id_round_trips(parts: dict[str, str]) -> None:
    """from_stream_id(key.stream_id) gives back the same key and parts."""
    key = SessionKey(**parts)
    back = SessionKey.from_stream_id(key.stream_id)
    assert back == key
    assert back.parts == dict(sorted(parts.items()))
    assert hash(back) == hash(key)


def test_part_order_does_not_matter() -> None:
    """Keys with the same parts given in another order are equal and share a stream id."""
    one = SessionKey(user_id="1", conversation_id="2")
    two = SessionKey(conversation_id="2", user_id="1")
    assert one == two and hash(one) == hash(two) and one.stream_id == two.stream_id
    assert list(one) == ["conversation_id", "user_id"]


def test_key_parts_are_readable_and_immutable() -> None:
    """Parts read by attribute, item and .parts; the key cannot be changed; it pickles."""
    key = SessionKey(user_id="1", conversation_id="2")
    assert (key.user_id, key["conversation_id"], len(key)) == ("1", "2", 2)
    assert key.parts == {"conversation_id": "2", "user_id": "1"}
    with pytest.raises(AttributeError):
        key.user_id = "3"
    with pytest.raises(AttributeError):
        _ = key.tenant
    with pytest.raises(KeyError):
        _ = key["tenant"]
    assert pickle.loads(pickle.dumps(key)) == key


def test_coerce_string_mapping_and_key() -> None:
    """A plain string means session_id, a mapping gives its parts, a key passes through."""
    key = SessionKey(user_id="1")
    assert SessionKey.coerce("abc") == SessionKey(session_id="abc")
    assert SessionKey.coerce({"user_id": "1"}) == key
    assert SessionKey.coerce(key) is key
    with pytest.raises(InvalidKeyError):
        SessionKey.coerce(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_values_round_trip_through_store_and_catalog(store: EventStore,
                                                             value: str) -> None:
    """Quotes, %, _, ;, =, /, unicode and long values come back exactly from read and sessions."""
    key = SessionKey(user_id=value, conversation_id=value[::-1])
    store.append(key, [said("hi")])
    store.append(SessionKey(user_id=("y" + value)[:512], conversation_id="c"), [said("decoy")])
    (record,) = store.read(key)
    assert record.key == key
    assert record.stream_id == key.stream_id
    (info,) = store.sessions(user_id=value)
    assert info.key == key
    assert info.key.parts == {"user_id": value, "conversation_id": value[::-1]}
    assert store.session(key) == info


@pytest.mark.parametrize("pattern", ["a%", "%", "a_", "_", "a*", "[a]", "a\\"])
def test_catalog_filter_has_no_wildcards(store: EventStore, pattern: str) -> None:
    """sessions(user_id=...) matches the literal value only: % and _ are not LIKE wildcards."""
    literal = SessionKey(user_id=pattern, conversation_id="1")
    store.append(literal, [said("x")])
    for other in ("a", "ab", "abc", "x", "aa", "a%b", "a_b", pattern + "z"):
        if other != pattern:
            store.append(SessionKey(user_id=other, conversation_id="1"), [said("x")])
    assert [r.key for r in store.sessions(user_id=pattern)] == [literal]


@pytest.mark.parametrize(
    ("parts", "named"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "1", "conversation_id": ""}, "conversation_id"),
        ({"user_id": 123}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": b"bytes"}, "user_id"),
        ({"user_id": "a\nb"}, "user_id"),
        ({"user_id": "tab\there"}, "user_id"),
        ({"user_id": "nul\x00"}, "user_id"),
        ({"user_id": "del\x7f"}, "user_id"),
        ({"user_id": "c1\x85"}, "user_id"),
        ({"user_id": "lone \ud800 surrogate"}, "user_id"),
        ({"user_id": "x" * 513}, "user_id"),
        ({"user-id": "1"}, "user-id"),
        ({"1user": "1"}, "1user"),
        ({"": "1"}, "''"),
        ({"n" * 65: "1"}, "n" * 65),
        ({"user id": "1"}, "user id"),
    ],
)
def test_bad_key_raises_naming_the_part(parts: dict[str, Any], named: str) -> None:
    """A bad part (empty, not text, control char, too long, bad name) raises naming it."""
    with pytest.raises(InvalidKeyError) as info:
        SessionKey(**parts)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)


def test_key_without_parts_raises() -> None:
    """A key with no parts raises InvalidKeyError."""
    with pytest.raises(InvalidKeyError, match="at least one part"):
        SessionKey()


def test_key_with_too_many_parts_raises() -> None:
    """A key with more parts than the limit raises InvalidKeyError."""
    with pytest.raises(InvalidKeyError, match="at most"):
        SessionKey(**{f"p{i}": "v" for i in range(17)})


def test_longest_allowed_value_is_accepted() -> None:
    """A value exactly at the length limit is a valid key."""
    assert SessionKey(user_id="x" * 512).user_id == "x" * 512


@pytest.mark.parametrize("text", ["no-equals", "a=1/b", "b=1/a=2", "a=%2", "a=x%3d", "=x", ""])
def test_non_canonical_stream_id_raises(text: str) -> None:
    """from_stream_id rejects text that is not the canonical id of any key."""
    with pytest.raises(InvalidKeyError):
        SessionKey.from_stream_id(text)


def test_store_rejects_bad_keys_and_writes_nothing(store: EventStore) -> None:
    """append/read/sessions with a bad key raise InvalidKeyError and the log stays empty."""
    before = store.last_position()
    for bad in ["", {"user_id": ""}, {"user_id": 1}, 42, None, ["user_id"]]:
        with pytest.raises(InvalidKeyError):
            store.append(bad, [said("x")])  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            store.read(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="user_id"):
        store.sessions(user_id="")
    with pytest.raises(InvalidKeyError, match="user_id"):
        store.sessions(user_id="a\nb")
    assert store.read_all() == [] and store.last_position() == before
