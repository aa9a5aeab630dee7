"""Session keys on the command line: ``name=value`` pairs, a bare value meaning ``session_id``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatledger.eventstore import InvalidKeyError, SessionKey
from chatledger.eventstore._keys import RESERVED_NAMES

__all__ = ["override_key", "parse_filters", "parse_key", "parse_parts"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_parts(args: Sequence[str]) -> dict[str, str]:
    """Parse ``name=value`` arguments into key parts; a bare value means ``session_id=value``.

    Raises:
        InvalidKeyError: An argument is not ``name=value``, or a part is given twice.
    """
    parts: dict[str, str] = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep:
            name, value = "session_id", arg
        elif not _NAME.match(name):
            raise InvalidKeyError(
                f"bad key part {arg!r}: expected name=value with an identifier name, "
                "e.g. user_id=123 (a bare value means session_id=value)"
            )
        if name in parts:
            raise InvalidKeyError(f"key part {name!r} is given twice")
        parts[name] = value
    return parts


def parse_filters(args: Sequence[str]) -> dict[str, str]:
    """Parse ``name=value`` filters (``sessions``, ``export``): here a bare word is an error,
    since ``sessions user_id`` would otherwise filter on ``session_id=user_id``.

    Raises:
        InvalidKeyError: An argument is not ``name=value``, or a name is given twice.
    """
    for arg in args:
        if "=" not in arg:
            raise InvalidKeyError(
                f"filter {arg!r} is not NAME=VALUE: use e.g. user_id=123 "
                f"(session_id={arg} for a session id)"
            )
    parts = parse_parts(args)
    reserved = sorted(parts.keys() & RESERVED_NAMES)
    if reserved:
        raise InvalidKeyError(f"no session key has a part named {reserved[0]!r} (it is "
                              "reserved); use --limit/--after for paging")
    return parts


def parse_key(args: Sequence[str]) -> SessionKey:
    """Parse a whole session key from ``name=value`` arguments.

    Raises:
        InvalidKeyError: No parts, bad syntax, or a part the key rules reject.
    """
    parts = parse_parts(args)
    if not parts:
        raise InvalidKeyError("give a session key, e.g. abc123 or user_id=123 conversation_id=1")
    return SessionKey(**parts)


def override_key(key: SessionKey, args: Sequence[str]) -> SessionKey:
    """A new key: ``key``'s parts with those in ``args`` replaced or added.

    Raises:
        InvalidKeyError: No parts in ``args``, or bad syntax.
    """
    changes = parse_parts(args)
    if not changes:
        raise InvalidKeyError("give the new key's parts, e.g. --to conversation_id=2")
    return SessionKey(**{**key.parts, **changes})
