"""Checking the log against an uploaded head file, where the store can do it.

A log head (``store.head()``: the size and Merkle root of the log at some moment, kept
elsewhere) catches what no in-database check can: a wholesale rewrite with valid digests, or a
deleted tail. Stores without ``head()`` cannot check one; the page then says so instead of
pretending to.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chatledger import eventstore
from chatledger.eventstore import InvalidInputError, VerifyReport

__all__ = ["MAX_HEAD_BYTES", "check_against_head", "heads_supported"]

MAX_HEAD_BYTES = 64 * 1024
"""A head file is a few hundred bytes; anything much larger is not one."""


def heads_supported(store: object) -> bool:
    """True when the store can produce and check log heads (``head()``, ``verify(against=)``)."""
    return callable(getattr(store, "head", None))


def _decode_head(data: bytes) -> Any:
    # The head type comes from the store package when it has one, so the file is validated
    # field by field; otherwise the store gets the plain JSON object.
    head_type = getattr(eventstore, "LogHead", None)
    try:
        if isinstance(head_type, type) and issubclass(head_type, msgspec.Struct):
            return msgspec.json.decode(data, type=head_type)
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidInputError(f"the uploaded file is not a log head: {e}") from e
    if not isinstance(value, dict):
        raise InvalidInputError("the uploaded file is not a log head: expected a JSON object")
    return value


def check_against_head(store: Any, data: bytes) -> VerifyReport:
    """Verify the whole log against an uploaded head file.

    Raises:
        InvalidInputError: The store cannot check heads, or the file is empty, too large or
            not a head.
    """
    if not heads_supported(store):
        raise InvalidInputError("this store cannot check log heads")
    if not data.strip():
        raise InvalidInputError("the uploaded head file is empty")
    if len(data) > MAX_HEAD_BYTES:
        raise InvalidInputError(f"the uploaded file is {len(data):,} bytes; a log head is at "
                                f"most {MAX_HEAD_BYTES:,}")
    report: VerifyReport = store.verify(against=_decode_head(data))
    return report
