"""The error tree. Every error chatledger raises on purpose is one of these.

    ChatledgerError                  root: catch this to catch everything below
    ├── InvalidKeyError              a session key part is empty, not text, too long or has control characters
    ├── InvalidInputError            a bad argument or event (also a ValueError)
    ├── ConcurrencyError             a stale expected_version: nothing was written
    ├── DuplicateEventError          an event id already stored with another stream or payload
    ├── NotFoundError                an unknown session or version
    └── StoreError                   the database itself: bad URL, unreachable, corrupt, unwritable
        └── OutcomeUnknownError      the connection failed after COMMIT was sent: retry with the
                                     same event_ids (a committed append comes back duplicate)

Which errors guarantee that nothing was written: every one of them, except
``OutcomeUnknownError``. Rows already stored that cannot be decoded raise ``StoreError``
naming the stream, version and position.

Backend errors (``sqlite3``, ``psycopg``, ``msgspec``) are wrapped at the store boundary with
``raise ... from e`` so the original stays on ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "ChatledgerError",
    "ConcurrencyError",
    "DuplicateEventError",
    "InvalidInputError",
    "InvalidKeyError",
    "NotFoundError",
    "OutcomeUnknownError",
    "StoreError",
]


class ChatledgerError(Exception):
    """Root of every error raised by chatledger."""


class InvalidKeyError(ChatledgerError, ValueError):
    """A session key is malformed; the message names the offending part."""


class InvalidInputError(ChatledgerError, ValueError):
    """An argument or event is malformed; the message names what is wrong."""


class ConcurrencyError(ChatledgerError):
    """The stream is not at the expected version; the append wrote nothing.

    Attributes:
        stream_id: The stream that was appended to.
        expected_version: The version the caller expected.
        actual_version: The version the stream is actually at.
    """

    def __init__(self, stream_id: str, expected_version: int, actual_version: int, *,
                 message: str | None = None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(message or (
            f"stream {stream_id!r} is at version {actual_version}, "
            f"expected {expected_version}; nothing was written"
        ))

    def restated(self, message: str) -> ConcurrencyError:
        """The same conflict (class and attributes, so callers catch one thing), said as what
        it means where it was met."""
        return ConcurrencyError(self.stream_id, self.expected_version, self.actual_version,
                                message=message)


class DuplicateEventError(ChatledgerError):
    """An event id is already stored, but not as part of an identical earlier append."""


class NotFoundError(ChatledgerError, LookupError):
    """An unknown session, version or event."""


class StoreError(ChatledgerError):
    """The database cannot be used: bad URL, unreachable, corrupt, read-only or full."""



class OutcomeUnknownError(StoreError):
    """The connection failed after the append's COMMIT was sent: it may or may not have been
    applied. Retry with the same ``event_ids``; if it had committed, the retry returns the
    original result with ``duplicate=True`` and writes nothing.

    Attributes:
        event_ids: The ids the append used (generated ones included), to retry with.
    """

    def __init__(self, message: str, event_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.event_ids = list(event_ids or [])
