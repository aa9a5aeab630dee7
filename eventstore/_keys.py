"""Composite session keys and their canonical, collision-free ``stream_id``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Union

from chatledger.eventstore._errors import InvalidKeyError

__all__ = ["KeyLike", "SessionKey"]

MAX_PARTS = 16
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 512

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A lone surrogate is not Unicode text: no database can store it as UTF-8.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Escaping only these three characters keeps stream ids readable and makes the encoding
# injective: '=' and '/' are the only separators and '%' is the escape itself.
_ESCAPES = str.maketrans({"%": "%25", "=": "%3D", "/": "%2F"})
_UNESCAPE = re.compile(r"%(25|3D|2F)")
_UNESCAPED = {"25": "%", "3D": "=", "2F": "/"}


# Names the catalog query takes as its own arguments (``sessions(**key_filter, limit, after)``):
# a part so named could be stored but never filtered on.
RESERVED_NAMES = frozenset({"limit", "after"})


def has_control(text: str) -> bool:
    """True when ``text`` holds a C0 or C1 control character (a key part may not)."""
    return _CONTROL.search(text) is not None


def _check_part(name: object, value: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise InvalidKeyError(
            f"key part name {shown} must be an identifier of at most {MAX_NAME_LENGTH} characters"
        )
    if name in RESERVED_NAMES:
        raise InvalidKeyError(f"key part name {name!r} is reserved: sessions() takes limit= and "
                              "after= as its own arguments; choose another name")
    if not isinstance(value, str):
        raise InvalidKeyError(f"key part {name!r} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidKeyError(f"key part {name!r} is empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidKeyError(
            f"key part {name!r} is {len(value)} characters long; the limit is {MAX_VALUE_LENGTH}"
        )
    if _CONTROL.search(value):
        raise InvalidKeyError(f"key part {name!r} contains a control character")
    if _SURROGATE.search(value):
        raise InvalidKeyError(f"key part {name!r} contains a lone surrogate (not valid Unicode)")


class SessionKey:
    """A composite session key: named string parts, e.g. ``user_id`` and ``conversation_id``.

    Two keys are equal when they have the same parts, whatever the order they were given in.
    ``stream_id`` is the canonical text form (parts sorted by name, values escaped), so no two
    different keys share a stream. One positional string is the ``session_id`` part, as a
    plain string is wherever a key is taken: ``SessionKey("abc") == SessionKey(session_id="abc")``.

    Raises:
        InvalidKeyError: A part is empty, not a string, too long or holds a control character.
    """

    __slots__ = ("_parts", "stream_id")

    _parts: tuple[tuple[str, str], ...]
    stream_id: str

    def __init__(self, *session_id: str, **parts: str) -> None:
        if session_id:
            if len(session_id) > 1 or "session_id" in parts:
                raise InvalidKeyError("give key parts by name (user_id='123'); one positional "
                                      "value at most, which is the session_id part")
            parts = {"session_id": session_id[0], **parts}
        if not parts:
            raise InvalidKeyError("a session key needs at least one part, e.g. session_id='abc'")
        if len(parts) > MAX_PARTS:
            raise InvalidKeyError(f"a session key has at most {MAX_PARTS} parts, got {len(parts)}")
        for name, value in parts.items():
            _check_part(name, value)
        ordered = tuple(sorted(parts.items()))
        object.__setattr__(self, "_parts", ordered)
        object.__setattr__(
            self,
            "stream_id",
            "/".join(f"{n}={v.translate(_ESCAPES)}" for n, v in ordered),
        )

    @classmethod
    def coerce(cls, key: KeyLike) -> SessionKey:
        """Turn a key-like value into a ``SessionKey``.

        A ``SessionKey`` is returned as is, a string means ``SessionKey(session_id=...)`` and a
        mapping gives its items as parts.

        Raises:
            InvalidKeyError: The value is not a valid key.
        """
        if isinstance(key, SessionKey):
            return key
        if isinstance(key, str):
            cached = _plain_keys.get(key)
            if cached is None:
                cached = cls(session_id=key)
                if len(_plain_keys) >= _PLAIN_CACHE_SIZE:
                    _plain_keys.clear()
                _plain_keys[key] = cached
            return cached
        if isinstance(key, Mapping):
            return cls(**{str(k): v for k, v in key.items()})
        raise InvalidKeyError(
            f"a session key must be a SessionKey, a string or a mapping, got {type(key).__name__}"
        )

    @classmethod
    def from_stream_id(cls, stream_id: str) -> SessionKey:
        """Parse a canonical ``stream_id`` back into its key.

        Raises:
            InvalidKeyError: The text is not a canonical stream id.
        """
        parts: dict[str, str] = {}
        for chunk in stream_id.split("/"):
            name, sep, value = chunk.partition("=")
            if not sep:
                raise InvalidKeyError(f"{stream_id!r} is not a stream id (no '=' in {chunk!r})")
            parts[name] = _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], value)
        key = cls(**parts)
        if key.stream_id != stream_id:
            raise InvalidKeyError(f"{stream_id!r} is not a canonical stream id")
        return key

    @property
    def parts(self) -> dict[str, str]:
        """The parts as a new dict, sorted by name."""
        return dict(self._parts)

    def __getattr__(self, name: str) -> str:
        for part, value in self._parts:
            if part == name:
                return value
        raise AttributeError(f"session key has no part {name!r}")

    def __getitem__(self, name: str) -> str:
        for part, value in self._parts:
            if part == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SessionKey is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SessionKey):
            return self._parts == other._parts
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._parts)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in self._parts)
        return f"SessionKey({inner})"

    def __str__(self) -> str:
        return self.stream_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._parts,))


# Plain-string keys repeat on every turn of a chat; validating them once is enough.
_PLAIN_CACHE_SIZE = 4096
_plain_keys: dict[str, SessionKey] = {}


def _rebuild(parts: tuple[tuple[str, str], ...]) -> SessionKey:
    return SessionKey(**dict(parts))


KeyLike = Union[SessionKey, str, Mapping[str, str]]
