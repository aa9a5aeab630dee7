"""``ChatledgerSaver``: LangGraph's checkpointer on the ledger.

Checkpoints and pending writes are events, one stream per thread and checkpoint namespace
(``SessionKey(thread_id=T)``, plus ``checkpoint_ns`` when it is not empty), so ``verify``,
heads, export and erasure cover them. The graph's messages channel is not copied into every
checkpoint: a checkpoint carries only the messages it added, which the history projection folds
into the thread's chat history, and a checkpoint's messages are read back as that history as of
the checkpoint's version. A checkpoint that removed or changed a message (``RemoveMessage``, an
update by id) is appended after a ``HistoryCleared`` with the whole new list, so the current
history follows the graph while ``as_of`` keeps every earlier state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from chatledger.eventstore import (
    CheckpointSaved,
    CheckpointWritesSaved,
    Event,
    EventStore,
    InvalidInputError,
    SessionKey,
    StoreError,
    default_url,
    open_store,
)
from chatledger.projections import shared_store
from chatledger.runtime.langgraph import _lifecycle
from chatledger.runtime.langgraph._history import history_change, messages_at
from chatledger.runtime.langgraph._index import SavedCheckpoint, ThreadIndex
from chatledger.runtime.langgraph._ledger import ThreadLedger, configurable, stream_key

__all__ = ["ChatledgerSaver"]


class ChatledgerSaver(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer whose checkpoints are events in a chatledger store.

    Switching a graph over takes two lines::

        from chatledger.runtime.langgraph import ChatledgerSaver
        graph = builder.compile(checkpointer=ChatledgerSaver("sqlite:///memory.db"))

    ``ChatHistory(SessionKey(thread_id=T), store).messages`` is then the graph state's
    messages (as chatledger messages), with the audit trail, ``as_of``, export and erasure.

    The saver keeps a bounded read index per stream, brought up to date from the log on every
    call, so it stays correct when several processes share one database. A checkpoint written
    by another process is deserialised only after the stream's chain verified.

    Args:
        store_or_url: An open ``EventStore`` or a store URL (one store per URL per process).
        serde: LangGraph's serializer for channel values and writes (default: its own).
        messages_channel: The channel that is the thread's chat history.
        max_threads: How many streams' read indexes to keep in memory.

    Raises:
        InvalidInputError: ``store_or_url`` is neither a store nor a URL, or ``max_threads`` is
            not an int of at least 0.
        StoreError: The database cannot be opened.
    """

    def __init__(self, store_or_url: EventStore | str | None = None, *,
                 serde: SerializerProtocol | None = None, messages_channel: str = "messages",
                 max_threads: int = 1024) -> None:
        super().__init__(serde=serde)
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads < 0:
            raise InvalidInputError(f"max_threads must be an int of at least 0, got "
                                    f"{max_threads!r}")
        if isinstance(store_or_url, EventStore):
            store = store_or_url
        elif store_or_url is None or isinstance(store_or_url, str):
            store = shared_store(store_or_url or default_url())
        else:
            raise InvalidInputError(f"expected an EventStore or a URL, got "
                                    f"{type(store_or_url).__name__}")
        self.ledger = ThreadLedger(store, max_threads=max_threads)
        self.messages_channel = messages_channel

    @property
    def store(self) -> EventStore:
        """The event store that holds the checkpoints."""
        return self.ledger.store

    def __repr__(self) -> str:
        return f"ChatledgerSaver({self.store.url!r})"

    @classmethod
    @contextmanager
    def from_conn_string(cls, url: str, *, messages_channel: str = "messages"
                         ) -> Iterator[ChatledgerSaver]:
        """A saver on its own store, closed on exit, as LangGraph's savers offer it::

            with ChatledgerSaver.from_conn_string("sqlite:///memory.db") as checkpointer:
                graph = builder.compile(checkpointer=checkpointer)

        Raises:
            StoreError: The database cannot be opened.
        """
        store = open_store(url)
        try:
            yield cls(store, messages_channel=messages_channel)
        finally:
            store.close()

    def setup(self) -> None:
        """Create the ledger now if it does not exist yet, as ``SqliteSaver.setup()`` and
        ``PostgresSaver.setup()`` create their tables (code written for them ports unchanged).

        Without it the first write creates the ledger, and reads before it see an empty one;
        but when ``?schema=`` names a PostgreSQL schema that does not exist yet, reads say so
        (a misspelt schema stays visible), so a graph's first ``invoke`` needs ``setup()``
        there, or ``chatledger init``.

        Raises:
            StoreError: The ledger cannot be created (e.g. the store was opened read-only).
        """
        if getattr(self.store, "readonly", False):
            raise StoreError(f"{self.store!r} is opened read-only; setup() creates nothing")
        open_store(self.store.url, create=True).close()

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint as one atomic append (after a ``HistoryCleared`` when the
        messages channel lost or changed a message).

        Raises:
            ThreadDeletedError: The thread was deleted; nothing was written.
            InvalidKeyError: No or a malformed thread id.
            InvalidInputError: The metadata cannot be stored as JSON.
        """
        conf = configurable(config)
        thread_id, ns = conf.get("thread_id"), conf.get("checkpoint_ns", "") or ""
        key = stream_key(thread_id, ns)
        if ns:
            self.ledger.check_root_alive(thread_id)
        meta = dict(get_serializable_checkpoint_metadata(config, metadata))
        try:
            meta = msgspec.json.decode(msgspec.json.encode(meta))
        except (TypeError, ValueError, msgspec.MsgspecError) as e:
            raise InvalidInputError(f"checkpoint metadata cannot be stored as JSON: {e}") from e
        run_id = meta.get("run_id")
        values = dict(checkpoint["channel_values"])
        raw_messages = values.get(self.messages_channel)

        def build(index: ThreadIndex) -> tuple[list[Event], Any]:
            events, delta, projected = history_change(self.store, key, index, raw_messages)
            body_values = dict(values)
            if projected:
                body_values.pop(self.messages_channel, None)
            body = {**checkpoint, "channel_values": body_values}
            body_type, body_data = self.serde.dumps_typed(body)
            events.append(CheckpointSaved(
                checkpoint_id=checkpoint["id"], parent_id=conf.get("checkpoint_id"),
                body_type=body_type, body=body_data, metadata=meta,
                run_id=None if run_id is None else str(run_id), projected=projected,
                messages=delta))

            unchanged = not events[:-1] and not delta
            was_cached = index.messages is not None and index.messages_version == index.version

            def done(index: ThreadIndex) -> None:
                if projected or raw_messages is None:
                    index.messages = list(raw_messages or [])
                    index.messages_version = index.version
                elif unchanged and was_cached:
                    index.messages_version = index.version
            return events, done

        meta_envelope = {"actor": "langgraph"}
        if run_id is not None:
            meta_envelope["run_id"] = str(run_id)
        self.ledger.append_built(key, build, meta_envelope)
        if ns:
            # a delete that listed this thread's streams before this append committed has
            # tombstoned the root by now: undo ourselves rather than resurrect the thread
            self.ledger.check_root_alive_after(thread_id, key)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Store a task's pending writes against a checkpoint as one append; a repeated
        (task, index) pair is not stored twice.

        Raises:
            ThreadDeletedError: The thread was deleted; nothing was written.
            InvalidKeyError: No or a malformed thread id.
        """
        conf = configurable(config)
        thread_id, ns = conf.get("thread_id"), conf.get("checkpoint_ns", "") or ""
        checkpoint_id = conf.get("checkpoint_id")
        if checkpoint_id is None:
            raise InvalidInputError("put_writes needs config['configurable']['checkpoint_id']")
        key = stream_key(thread_id, ns)
        if ns:
            self.ledger.check_root_alive(thread_id)
        encoded = []
        for i, (channel, value) in enumerate(writes):
            type_, data = self.serde.dumps_typed(value)
            encoded.append((WRITES_IDX_MAP.get(channel, i), channel, type_, data))

        def build(index: ThreadIndex) -> tuple[list[Event], Any] | None:
            stored = index.writes.get(checkpoint_id, {})
            # special channels (errors, interrupts) replace; ordinary writes are kept once
            fresh = [w for w in encoded if w[0] < 0 or (task_id, w[0]) not in stored]
            if not fresh:
                return None
            return [CheckpointWritesSaved(checkpoint_id=checkpoint_id, task_id=task_id,
                                          task_path=task_path, writes=fresh)], lambda _: None

        self.ledger.append_built(key, build, {"actor": "langgraph"})
        if ns:
            self.ledger.check_root_alive_after(thread_id, key)

    # -- reading -------------------------------------------------------------------------------
    def _tuple(self, key: SessionKey, index: ThreadIndex, saved: SavedCheckpoint,
               thread_id: Any, ns: str) -> CheckpointTuple:
        event = saved.event
        self.ledger.verified(key, index, saved.version)
        body = self.serde.loads_typed((event.body_type, event.body))
        values = dict(body.get("channel_values") or {})
        if event.projected:
            values[self.messages_channel] = messages_at(self.store, key, index, saved.version)
        checkpoint: Checkpoint = {**body, "channel_values": values}  # type: ignore[typeddict-item]
        writes = []
        for w in index.pending_writes(event.checkpoint_id):
            self.ledger.verified(key, index, w.version)
            writes.append((w.task_id, w.channel, self.serde.loads_typed((w.type, w.data))))
        parent = None
        if event.parent_id is not None:
            parent = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                       "checkpoint_id": event.parent_id}}
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                     "checkpoint_id": event.checkpoint_id}},
            checkpoint=checkpoint, metadata=dict(event.metadata),  # type: ignore[arg-type]
            parent_config=parent, pending_writes=writes)  # type: ignore[arg-type]

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by the config, or the thread's newest; None if there is none.

        Raises:
            CheckpointIntegrityError: The stream failed verification.
        """
        conf = configurable(config)
        thread_id, ns = conf.get("thread_id"), conf.get("checkpoint_ns", "") or ""
        key = stream_key(thread_id, ns)
        index = self.ledger.caught_up(key)
        with index.lock:
            saved = index.get(get_checkpoint_id(config))
            return None if saved is None else self._tuple(key, index, saved, thread_id, ns)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of one thread (and namespace) or, with no config, of all;
        a config naming a ``checkpoint_id`` lists that checkpoint only, as LangGraph's savers do.

        Raises:
            CheckpointIntegrityError: A stream failed verification.
        """
        before_id = get_checkpoint_id(before) if before else None
        only_id = get_checkpoint_id(config) if config else None  # as LangGraph's savers filter
        found: list[tuple[str, SessionKey, ThreadIndex, SavedCheckpoint]] = []
        for key in self.ledger.streams(config):
            index = self.ledger.caught_up(key)
            for saved in index.visible():
                cid = saved.event.checkpoint_id
                if (before_id is not None and cid >= before_id) or \
                        (only_id is not None and cid != only_id):
                    continue
                if filter and any(saved.event.metadata.get(k) != v for k, v in filter.items()):
                    continue
                found.append((cid, key, index, saved))
        found.sort(key=lambda f: f[0], reverse=True)
        for _, key, index, saved in found[:limit] if limit is not None else found:
            with index.lock:
                item = self._tuple(key, index, saved, key.parts["thread_id"],
                                   key.parts.get("checkpoint_ns", ""))
            yield item

    def get_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]
                                  ) -> Mapping[str, DeltaChannelHistory]:
        """Each channel's writes along the checkpoint's ancestors, and the nearest stored value,
        from one indexed range read of the stream.

        Raises:
            CheckpointIntegrityError: The stream failed verification.
        """
        if not channels:
            return {}
        conf = configurable(config)
        thread_id, ns = conf.get("thread_id"), conf.get("checkpoint_ns", "") or ""
        key = stream_key(thread_id, ns)
        index = self.ledger.caught_up(key)
        collected: dict[str, list[tuple[str, str, Any]]] = {c: [] for c in channels}
        seeds: dict[str, Any] = {}
        with index.lock:
            target = index.get(get_checkpoint_id(config))
            parent = None if target is None else target.event.parent_id
            remaining = set(channels)
            while parent is not None and remaining:
                saved = index.get(parent)
                if saved is None:
                    break
                for w in reversed(index.pending_writes(parent)):
                    if w.channel in remaining:
                        self.ledger.verified(key, index, w.version)
                        collected[w.channel].append(
                            (w.task_id, w.channel, self.serde.loads_typed((w.type, w.data))))
                values = self._tuple(key, index, saved, thread_id, ns).checkpoint["channel_values"]
                for ch in [c for c in remaining if c in values]:
                    seeds[ch] = values[ch]
                    remaining.discard(ch)
                parent = saved.event.parent_id
        out: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            entry: DeltaChannelHistory = {"writes": list(reversed(collected[ch]))}
            if ch in seeds:
                entry["seed"] = seeds[ch]
            out[ch] = entry
        return out

    # -- deleting, copying, pruning (chatledger.runtime.langgraph._lifecycle) -----------------
    def delete_thread(self, thread_id: str) -> None:
        """Erase a thread: every namespace's checkpoints, writes and messages, for good.

        The root stream is tombstoned first, so a write that races the delete (a run still
        going, LangGraph issue 7206) is refused or erases itself; a deleted thread id cannot be
        written again. The log keeps the digests, so ``verify`` still passes.

        Raises:
            InvalidKeyError: A malformed thread id.
        """
        _lifecycle.delete_thread(self.ledger, thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints and writes of these runs from every thread's view.

        The events stay in the log for audit (``delete_thread`` erases). Finding the runs
        reads every thread's stream.
        """
        _lifecycle.delete_for_runs(self.ledger, run_ids)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's newest checkpoint (``keep_latest``) or none (``delete``).

        Raises:
            InvalidInputError: An unknown strategy.
        """
        _lifecycle.prune(self.ledger, thread_ids, strategy)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Fork a thread: the target starts with a ``SessionForked`` naming the source and its
        version, then every checkpoint and write of the source, in order, per namespace.

        Raises:
            InvalidInputError: The target thread already has events.
            CheckpointIntegrityError: The source failed verification; nothing was copied.
        """
        _lifecycle.copy_thread(self.ledger, source_thread_id, target_thread_id)

    # -- async twins: the store calls run in a worker thread, never on the event loop --------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """``get_tuple`` off the event loop."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        """``list`` off the event loop."""
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        """``put`` off the event loop."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """``put_writes`` off the event loop."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """``delete_thread`` off the event loop."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """``delete_for_runs`` off the event loop."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """``copy_thread`` off the event loop."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``prune`` off the event loop."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def aget_delta_channel_history(self, *, config: RunnableConfig,
                                         channels: Sequence[str]
                                         ) -> Mapping[str, DeltaChannelHistory]:
        """``get_delta_channel_history`` off the event loop."""
        return await asyncio.to_thread(
            lambda: self.get_delta_channel_history(config=config, channels=channels))
