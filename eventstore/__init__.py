"""The log: session keys, messages, events, the codec and the stores.

Every message that enters a conversation is an immutable event in an append-only log, keyed by
a composite session key. ``open_store(url)`` opens the log on SQLite (the embedded default) or
PostgreSQL.
"""

from __future__ import annotations

from chatledger.eventstore._append import validate_events
from chatledger.eventstore._errors import (
    ChatledgerError,
    ConcurrencyError,
    DuplicateEventError,
    InvalidInputError,
    InvalidKeyError,
    NotFoundError,
    OutcomeUnknownError,
    StoreError,
)
from chatledger.eventstore._events import (
    AnyEvent,
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    Event,
    HistoryCleared,
    MessageAppended,
    MessageRedacted,
    MessageRef,
    ModelCalled,
    PayloadErased,
    Record,
    RunRecorded,
    SessionForked,
    SessionTagged,
    ThreadDeleted,
)
from chatledger.eventstore._heads import InclusionProof, LogHead, verify_proof
from chatledger.eventstore._keys import KeyLike, SessionKey
from chatledger.eventstore._messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    Message,
    SystemMessage,
    ToolMessage,
    from_langchain_dict,
    from_openai,
    get_buffer_string,
    to_langchain_dict,
    to_openai,
)
from chatledger.eventstore._open import default_url, open_store
from chatledger.eventstore._projection import HistoryState, apply, fold, messages_of
from chatledger.eventstore._redact import redact_url
from chatledger.eventstore._store import (
    AppendResult,
    ErasedEvent,
    ErasureReceipt,
    EventStore,
    Problem,
    SessionInfo,
    VerifyReport,
)

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "AnyEvent",
    "AnyMessage",
    "AppendResult",
    "ChatMessage",
    "ChatledgerError",
    "CheckpointSaved",
    "CheckpointWritesSaved",
    "CheckpointsDeleted",
    "ConcurrencyError",
    "DuplicateEventError",
    "ErasedEvent",
    "ErasureReceipt",
    "Event",
    "EventStore",
    "FunctionMessage",
    "HistoryCleared",
    "HistoryState",
    "HumanMessage",
    "InclusionProof",
    "InvalidInputError",
    "InvalidKeyError",
    "KeyLike",
    "LogHead",
    "Message",
    "MessageAppended",
    "MessageRedacted",
    "MessageRef",
    "ModelCalled",
    "NotFoundError",
    "OutcomeUnknownError",
    "PayloadErased",
    "Problem",
    "Record",
    "RunRecorded",
    "SessionForked",
    "SessionInfo",
    "SessionKey",
    "SessionTagged",
    "StoreError",
    "SystemMessage",
    "ThreadDeleted",
    "ToolMessage",
    "VerifyReport",
    "apply",
    "default_url",
    "fold",
    "from_langchain_dict",
    "from_openai",
    "get_buffer_string",
    "messages_of",
    "open_store",
    "redact_url",
    "to_langchain_dict",
    "to_openai",
    "validate_events",
    "verify_proof",
]
