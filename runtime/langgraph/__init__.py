"""chatledger as LangGraph's checkpointer: checkpoints and writes are events in the ledger.

Switching a graph over takes two lines::

    from chatledger.runtime.langgraph import ChatledgerSaver
    graph = builder.compile(checkpointer=ChatledgerSaver("sqlite:///memory.db"))

Needs ``langgraph`` (``pip install 'chatledger[langgraph]'``).
"""

from __future__ import annotations

from chatledger.runtime.langgraph._errors import CheckpointIntegrityError, ThreadDeletedError
from chatledger.runtime.langgraph._ledger import stream_key
from chatledger.runtime.langgraph._saver import ChatledgerSaver

__all__ = ["ChatledgerSaver", "CheckpointIntegrityError", "ThreadDeletedError", "stream_key"]
