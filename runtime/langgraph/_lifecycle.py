"""A thread's life after its checkpoints: delete (an erasure), delete runs, prune, copy.

Functions over the saver's ``ThreadLedger``, kept apart from its read and write paths.
``delete_thread`` erases content; ``prune`` and ``delete_for_runs`` only take checkpoints out of
the graph's view (a ``CheckpointsDeleted`` event), so the audit trail keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from chatledger.eventstore import (
    AnyMessage,
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    Event,
    HistoryCleared,
    InvalidInputError,
    MessageAppended,
    SessionForked,
    SessionKey,
    ThreadDeleted,
)
from chatledger.runtime.langgraph._index import ThreadIndex
from chatledger.runtime.langgraph._ledger import ThreadLedger, stream_key

__all__ = ["copy_thread", "delete_for_runs", "delete_thread", "prune"]

_STRATEGIES = ("keep_latest", "delete")


def _thread(thread_id: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def delete_thread(ledger: ThreadLedger, thread_id: Any) -> None:
    """Tombstone the root stream first, then every namespace's stream, then erase them.

    In that order a racing write is caught either way: a write that committed before the
    streams were listed is erased with them, and one that committed later sees the root's
    tombstone when it checks again after its append (and erases itself).
    """
    root = stream_key(thread_id)
    ledger.store.append(root, [ThreadDeleted(reason="langgraph: delete_thread")],
                       meta={"actor": "langgraph"})
    for key in ledger.streams(_thread(thread_id)):
        if key != root and not ledger.caught_up(key).deleted:
            ledger.store.append(key, [ThreadDeleted(reason="langgraph: delete_thread")],
                               meta={"actor": "langgraph"})
        ledger.erase_stream(key)


def _hide(ledger: ThreadLedger, key: SessionKey, ids: Sequence[str], reason: str) -> None:
    def build(index: ThreadIndex) -> tuple[list[Event], Any] | None:
        gone = [c for c in ids if index.get(c) is not None]
        if not gone:
            return None
        events: list[Event] = [CheckpointsDeleted(checkpoint_ids=gone, reason=reason)]
        newest = index.get(None)
        if newest is not None and newest.event.checkpoint_id in gone:
            # the graph's state falls back to an older checkpoint (or to none), and so does
            # the current history; earlier versions stay readable
            left = [c for c in index.visible() if c.event.checkpoint_id not in gone]
            events.append(HistoryCleared(reason=reason))
            if left and left[0].event.projected:
                _, kept = ledger.store.load_history_at(key, version=left[0].version)
                events += [MessageAppended(message=cast(AnyMessage, m)) for m in kept]
        return events, lambda _: None

    ledger.append_built(key, build, {"actor": "langgraph"})


def delete_for_runs(ledger: ThreadLedger, run_ids: Sequence[str]) -> None:
    """Hide every checkpoint whose run is one of ``run_ids``, in every thread."""
    wanted = {str(r) for r in run_ids}
    if not wanted:
        return
    for key in ledger.streams(None):
        index = ledger.caught_up(key)
        ids = [c.event.checkpoint_id for c in index.visible() if c.event.run_id in wanted]
        if ids:
            _hide(ledger, key, ids, "langgraph: delete_for_runs")


def prune(ledger: ThreadLedger, thread_ids: Sequence[str], strategy: str) -> None:
    """Hide all but each namespace's newest checkpoint, or all of them.

    Raises:
        InvalidInputError: An unknown strategy.
    """
    if strategy not in _STRATEGIES:
        raise InvalidInputError(f"unknown prune strategy {strategy!r}; use 'keep_latest' "
                                "or 'delete'")
    for thread_id in thread_ids:
        for key in ledger.streams(_thread(thread_id)):
            visible = ledger.caught_up(key).visible()
            ids = [c.event.checkpoint_id for c in
                   (visible[1:] if strategy == "keep_latest" else visible)]
            if ids:
                _hide(ledger, key, ids, f"langgraph: prune {strategy}")


def copy_thread(ledger: ThreadLedger, source: Any, target: Any) -> None:
    """Copy every namespace of ``source`` to ``target`` after a ``SessionForked``.

    Raises:
        InvalidInputError: The target already has events; nothing was copied.
        CheckpointIntegrityError: The source failed verification; nothing was copied.
    """
    plans: list[tuple[SessionKey, list[Event]]] = []
    for key in ledger.streams(_thread(source)):
        index = ledger.caught_up(key)
        if index.deleted:
            continue
        records = ledger.store.read(key, until_version=index.version)
        # a copy re-chains what it copies: copying altered rows would launder them
        ledger.verified(key, index, index.version)
        to = stream_key(target, key.parts.get("checkpoint_ns", ""))
        if ledger.store.version(to) > 0:
            raise InvalidInputError(f"copy_thread: target {to.stream_id!r} already has events; "
                                    "nothing was copied")
        events: list[Event] = [SessionForked(parent=dict(key.parts), parent_version=index.version)]
        events += [r.event for r in records if isinstance(
            r.event, (CheckpointSaved, CheckpointWritesSaved, CheckpointsDeleted, HistoryCleared,
                      MessageAppended))]
        plans.append((to, events))
    for to, events in plans:
        ledger.store.append(to, events, expected_version=0,
                           meta={"actor": "langgraph", "copied_from": str(source)})
