"""Session keys on the command line: name=value pairs, bare values, clear errors."""

from __future__ import annotations

import pytest

from chatledger.eventstore import InvalidKeyError, SessionKey
from chatledger.tools._keys import override_key, parse_filters, parse_key, parse_parts


def test_name_value_pairs_make_a_composite_key() -> None:
    """user_id=123 conversation_id=1 is the key with those two parts."""
    assert parse_key(["user_id=123", "conversation_id=1"]) == SessionKey(
        user_id="123", conversation_id="1")


def test_a_bare_value_means_session_id() -> None:
    """A value without '=' is the session_id."""
    assert parse_key(["abc123"]) == SessionKey(session_id="abc123")


def test_a_value_may_contain_equals_signs() -> None:
    """Only the first '=' separates the name from the value."""
    assert parse_parts(["session_id=a=b"]) == {"session_id": "a=b"}


@pytest.mark.parametrize("arg", ["=x", "user id=1", "1user=2", "user-id=3"])
def test_a_bad_part_name_is_rejected_with_the_expected_syntax(arg: str) -> None:
    """A name that is not an identifier names the argument and the name=value form."""
    with pytest.raises(InvalidKeyError, match="expected name=value"):
        parse_parts([arg])


def test_a_part_given_twice_is_rejected() -> None:
    """Giving user_id twice is an error, not a silent overwrite."""
    with pytest.raises(InvalidKeyError, match="given twice"):
        parse_parts(["user_id=1", "user_id=2"])


def test_no_parts_is_rejected() -> None:
    """An empty key asks for one, with an example."""
    with pytest.raises(InvalidKeyError, match="give a session key"):
        parse_key([])


def test_override_keeps_the_parts_not_given() -> None:
    """--to conversation_id=2 keeps user_id from the source key."""
    source = SessionKey(user_id="123", conversation_id="1")
    assert override_key(source, ["conversation_id=2"]) == SessionKey(
        user_id="123", conversation_id="2")


def test_a_filter_on_a_reserved_name_is_one_clear_error() -> None:
    """``sessions limit=5`` is not a key filter (no key has such a part): say so and point to
    the paging options, rather than fail inside the catalog query."""
    with pytest.raises(InvalidKeyError, match=r"'limit' .*--limit/--after"):
        parse_filters(["limit=5", "user_id=a"])
