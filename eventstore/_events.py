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
    "CheckpointSaved",
    "CheckpointWritesSaved",
    "CheckpointsDeleted",
    "Event",
    "HistoryCleared",
    "MessageAppended",
    "MessageRedacted",
    "MessageRef",
    "ModelCalled",
    "PayloadErased",
    "Record",
    "RunRecorded",
    "SessionForked",
    "SessionTagged",
    "ThreadDeleted",
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
    # The chain's whole input as JSON, its new-messages value replaced by a reference to the
    # run's input messages ({"$input": "text" | "message" | "messages"}), so they are stored
    # once; None for runs recorded before chain inputs were.
    chain_input: Any = None
    # The wrapper's shape keys ("input", "history", "output") that turned chain_input into
    # what the wrapped runnable received, so replay can rebuild that exactly.
    keys: dict[str, str] = {}


class SessionTagged(Event, tag="session_tagged", frozen=True, kw_only=True):
    """Tags were added to or removed from the session."""

    added: list[str] = []
    removed: list[str] = []


class PayloadErased(Event, tag="payload_erased", frozen=True, kw_only=True):
    """Read-side stand-in for an event whose payload was lawfully erased. Never stored."""

    erased_type: str


class MessageRef(msgspec.Struct, tag_field="type", tag="ref", frozen=True, kw_only=True):
    """Messages a model call shares with its run, instead of a copy.

    ``source`` "history" means messages ``start:stop`` of the history the run read (as of its
    ``history_version``); "input" and "output" mean the run's own input or output messages
    ``start:stop``.
    """

    source: str
    start: int
    stop: int


class ModelCalled(Event, tag="model_called", frozen=True, kw_only=True):
    """One chat-model call made during the run ``run_id``, exactly as the model saw it.

    Appended with its run, in the turn's one append. It is no history message: the history
    projection ignores it. ``request`` is the exact message list the model received after
    prompt rendering; the parts it shares with the run are ``MessageRef``s (each message is
    stored once), the rest (a rendered system prompt, say) is inline.
    """

    run_id: str
    index: int = 0
    provider: str = ""
    model: str = ""
    parameters: dict[str, Any] = {}
    request: list[Union[AnyMessage, MessageRef]] = []
    response: Union[AnyMessage, MessageRef, None] = None
    usage: Union[dict[str, Any], None] = None
    finish_reason: Union[str, None] = None
    response_id: Union[str, None] = None
    stream: bool = False
    # When the call started, in ms after the run started, and how long it took.
    offset_ms: float = 0.0
    latency_ms: float = 0.0
    error: Union[str, None] = None


# -- LangGraph checkpoints (chatledger.runtime.langgraph) ---------------------------------
class CheckpointSaved(Event, tag="checkpoint_saved", frozen=True, kw_only=True):
    """A LangGraph checkpoint of this thread and namespace.

    ``body`` is the checkpoint serialised by the saver's serde (``body_type`` names its
    encoding), without the messages channel: those messages are the session's history, so
    ``messages`` holds only the ones this checkpoint added. A checkpoint that removed or
    changed a message is appended after a ``HistoryCleared`` and carries the whole list.
    """

    checkpoint_id: str
    parent_id: Union[str, None] = None
    body_type: str
    body: bytes
    metadata: dict[str, Any] = {}
    run_id: Union[str, None] = None
    projected: bool = False  # the messages channel lives in the history projection
    messages: list[AnyMessage] = []


class CheckpointWritesSaved(Event, tag="checkpoint_writes_saved", frozen=True, kw_only=True):
    """Pending writes of one task against a checkpoint; ``writes`` are (channel, type, data)."""

    checkpoint_id: str
    task_id: str
    task_path: str = ""
    writes: list[tuple[int, str, str, bytes]] = []  # (idx, channel, serde type, serde data)


class CheckpointsDeleted(Event, tag="checkpoints_deleted", frozen=True, kw_only=True):
    """Checkpoints (and their writes) were removed from the graph's view (prune, delete_for_runs).

    The events stay in the log for audit; erasing content is ``ThreadDeleted``'s job.
    """

    checkpoint_ids: list[str]
    reason: str = ""


class ThreadDeleted(Event, tag="thread_deleted", frozen=True, kw_only=True):
    """The thread was deleted: its content is erased and no later write is accepted."""

    reason: str = ""


AnyEvent = Union[
    MessageAppended, HistoryCleared, MessageRedacted, SessionForked, RunRecorded, SessionTagged,
    ModelCalled,
    CheckpointSaved, CheckpointWritesSaved, CheckpointsDeleted, ThreadDeleted,
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
