"""Events: frozen, keyword-only, tagged msgspec Structs, one module, one union.

Tags are explicit and stable (never the class name), so renaming a class cannot orphan stored
rows. Evolve by msgspec's rules: new fields get defaults; a breaking change is a new tag plus an
upcaster in ``eventstore._codec``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Union

import msgspec

from chatledger.eventstore._keys import SessionKey
from chatledger.eventstore._messages import AnyMessage

__all__ = [
    "AnyEvent",
    "Event",
    "HistoryCleared",
    "MessageAppended",
    "MessageRedacted",
    "PayloadErased",
    "Record",
    "RunRecorded",
    "SessionForked",
    "SessionTagged",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True,
            gc=False):
    """Base of every event. Use a concrete event such as ``MessageAppended``."""


class MessageAppended(Event, tag="message_appended", frozen=True, kw_only=True):
    """One message entered the conversation."""

    message: AnyMessage


class HistoryCleared(Event, tag="history_cleared", frozen=True, kw_only=True):
    """The current history was emptied; earlier versions stay readable."""

    reason: Union[str, None] = None


class MessageRedacted(Event, tag="message_redacted", frozen=True, kw_only=True):
    """The payload of the event at ``version`` was erased (its digest stays, so the chain verifies)."""

    version: int
    reason: str = ""


class SessionForked(Event, tag="session_forked", frozen=True, kw_only=True):
    """This stream starts as a copy of ``parent``'s history at ``parent_version``.

    The inherited messages are carried in the event, so the fork's history is a fold of its own
    stream and stays readable whatever later happens to the parent.
    """

    parent: dict[str, str]
    parent_version: int
    messages: list[AnyMessage] = []


class RunRecorded(Event, tag="run_recorded_v2", frozen=True, kw_only=True):
    """One chain run: its status, the history version it read, and its messages by version.

    A saved turn appends its input and output messages and this event together, so the run
    refers to them by version (``input_versions``, ``output_versions``) instead of holding
    copies: each message is stored once. A run whose turn was not saved (an error, a cancelled
    stream) has no message events; its input and any partial output are kept here, in
    ``input`` and ``output``, since they are nowhere else.

    Runs stored before this shape (tag ``run_recorded``, with copies) are upcast on read.
    """

    run_id: str
    status: str  # "ok", "error" or "cancelled"
    history_version: int = 0
    input_versions: list[int] = []
    output_versions: list[int] = []
    input: list[AnyMessage] = []
    output: list[AnyMessage] = []
    model: Union[str, None] = None
    latency_ms: float = 0.0
    error: Union[str, None] = None


class SessionTagged(Event, tag="session_tagged", frozen=True, kw_only=True):
    """Tags were added to or removed from the session."""

    added: list[str] = []
    removed: list[str] = []


class PayloadErased(Event, tag="payload_erased", frozen=True, kw_only=True):
    """Read-side stand-in for an event whose payload was lawfully erased. Never stored."""

    erased_type: str


AnyEvent = Union[
    MessageAppended, HistoryCleared, MessageRedacted, SessionForked, RunRecorded, SessionTagged
]


class Record(msgspec.Struct, frozen=True, gc=False):
    """One stored event with its envelope, as ``read`` and ``read_all`` return it."""

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    recorded_at: datetime
    event: Union[AnyEvent, PayloadErased]
    meta: dict[str, Any]
    digest: str
    chain: str

    @property
    def key(self) -> SessionKey:
        """The session key of the stream this event belongs to."""
        return SessionKey.from_stream_id(self.stream_id)
