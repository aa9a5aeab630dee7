"""Numbers and times as people type them, parsed one way for the command line and the web view.

Everything typed is untrusted: a value that is not what it should be, or out of the range the
store keeps, is an ``InvalidInputError`` naming the option or parameter and the value (cut
short when long), never a stray ``ValueError`` or ``OverflowError``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from chatledger.eventstore import InvalidInputError

__all__ = ["MAX_INT", "is_number", "parse_number", "parse_time", "shown"]

MAX_INT = 2**63 - 1
"""The largest version, position or count the store keeps (both backends use 64-bit ints)."""

# ASCII digits only: str.isdigit also takes "²" and other digits int() refuses.
_DIGITS = re.compile(r"[0-9]+\Z")
_SHOWN = 40


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut short when long (a value can be megabytes)."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}… ({len(text):,} characters)"


def is_number(text: str) -> bool:
    """True when ``text`` is a non-negative whole number in ASCII digits."""
    return _DIGITS.match(text) is not None


def parse_number(text: str, name: str) -> int:
    """A non-negative whole number of at most ``MAX_INT``, in ASCII digits.

    Raises:
        InvalidInputError: ``text`` is not such a number, or is larger (``name`` says where
            it was given).
    """
    if not is_number(text):
        raise InvalidInputError(f"{name} must be a non-negative whole number, got {shown(text)}")
    digits = text.lstrip("0")
    if len(digits) > len(str(MAX_INT)) or int(digits or "0") > MAX_INT:
        raise InvalidInputError(f"{name} {shown(text)} is too large: at most 2**63 - 1 "
                                f"({MAX_INT})")
    return int(text)


def parse_time(text: str, name: str, *, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 time, as UTC.

    Args:
        text: The time as typed (``2024-05-01T12:00:00Z``, ``2024-05-01T14:00:00+02:00``).
        name: The option or parameter it was given as, for error messages.
        zone: The zone of a time that names none; None refuses such a time.

    Raises:
        InvalidInputError: ``text`` is no ISO 8601 time, names no zone (without ``zone``), or
            falls outside the years 1 to 9999 once in UTC.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{name} {shown(text)} is not an ISO 8601 time; expected e.g. "
                                "2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if zone is None:
            raise InvalidInputError(f"{name} {shown(text)} has no time zone; expected e.g. "
                                    "2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00")
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(f"{name} {shown(text)} is out of range: in UTC it falls "
                                "outside the years 1 to 9999") from None
