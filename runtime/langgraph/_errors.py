"""The errors of the LangGraph checkpointer, under chatledger's one root.

    ChatledgerError
    ├── ThreadDeletedError            a write to a thread that ``delete_thread`` erased
    └── StoreError
        └── CheckpointIntegrityError  a stream failed verification; nothing was deserialised
"""

from __future__ import annotations

from chatledger.eventstore import ChatledgerError, StoreError

__all__ = ["CheckpointIntegrityError", "ThreadDeletedError"]


class ThreadDeletedError(ChatledgerError):
    """The thread was deleted; a late write is refused (or erased if it raced the delete)."""


class CheckpointIntegrityError(StoreError):
    """A stored row of the thread's stream was altered, so its checkpoints are not loaded.

    A checkpoint body is deserialised by LangGraph's serializer, so a tampered one is an
    unsafe-deserialisation vector; the stream's digest chain is checked first.
    """
