"""``RunnableWithMessageHistory``: load a session's history before a run, save the turn after.

It keeps LangChain's constructor, config shape and input/output rules, so code ports line for
line, and fixes what loses data there: a failed save raises; a failed or cancelled run is
recorded (as ``RunRecorded``) without saving half a turn; a stream saves one whole message; the
history is read once per turn; and concurrent turns on one session never lose a message.

With a ``projections.ChatHistory`` a turn is one atomic append (``ChatHistory.record_turn``):
the input and output messages and a ``RunRecorded`` event that names them and the history
version the turn read, the chain's whole input, and every model call made during the run
(reported by the chat-model base to the turn's recorder, ``runtime._recording``). Any other history object with ``messages`` and ``add_messages``
(LangChain's ``BaseChatMessageHistory`` shape) gets ``add_messages(input + output)``. The
difference lives in ``runtime._histories``, the one adapter boundary.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from chatledger.eventstore import (
    ChatledgerError,
    InvalidInputError,
    Message,
)
from chatledger.eventstore._log import get_logger, logging_enabled
from chatledger.projections import Turn
from chatledger.runtime._config import (
    ConfigurableFieldSpec,
    RunnableConfig,
    child_config,
    ensure_config,
    get_config_list,
)
from chatledger.runtime._histories import TurnHistory, adapt_history
from chatledger.runtime._history_shapes import (
    DEFAULT_SESSION_SPEC,
    factory_parameters,
    input_messages,
    output_messages,
    runnable_input,
    session_arguments,
)
from chatledger.runtime._recording import (
    CallRecorder,
    chain_input_json,
    model_called_events,
    recording,
)
from chatledger.runtime._runnable import Runnable, coerce_to_runnable
from chatledger.runtime._schema import history_input_schema, history_output_schema
from chatledger.runtime._streams import aggregate

__all__ = ["RunnableWithMessageHistory"]

_log = get_logger(__name__)
_END = object()


def _model_name(runnable: Runnable[Any, Any]) -> str | None:
    """The ``model_name`` of the first chat model inside ``runnable``, breadth first."""
    from chatledger.runtime.models._base import ChatModel

    queue, seen = [runnable], set()
    while queue:
        step = queue.pop(0)
        if id(step) in seen:
            continue
        seen.add(id(step))
        if isinstance(step, ChatModel):
            return step.model_name
        queue.extend(step.children())
    return None


def _run_to_completion(awaitable: Any) -> Any:
    """The result of an awaitable, from sync code (in a worker thread if a loop is running)."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


async def _in_thread_to_the_end(call: Callable[[], None]) -> BaseException | None:
    """Run ``call`` in a thread of its own and wait for it, through any cancellation.

    A cancellation of the waiting task is re-raised once ``call`` has returned. A thread's
    write, unlike a coroutine's, cannot be cut short: not by a second cancel (a timeout), not
    by ``asyncio.run`` cancelling the tasks left when it shuts down, and not even by the event
    loop closing under it (the thread then finishes on its own).

    Returns:
        The error ``call`` raised, or None.
    """
    done: Future[None] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        done.set_running_or_notify_cancel()
        try:
            context.run(call)
        except BaseException as e:  # handed to the waiting task, which raises or notes it
            done.set_exception(e)
        else:
            done.set_result(None)

    threading.Thread(target=run, name="chatledger-record-run").start()
    waiting = asyncio.wrap_future(done)
    cancelled = False
    while not waiting.done():
        try:
            await asyncio.wait((waiting,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return waiting.exception()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Turn:
    """Everything one call knows between loading the history and saving the turn."""

    __slots__ = ("chain_input", "history", "inner_config", "inner_input", "keys", "loaded",
                 "new_input", "recorder", "run_id", "started", "version")

    def __init__(self, history: TurnHistory, version: int | None, new_input: list[Message],
                 inner_input: Any, inner_config: RunnableConfig, run_id: str, *,
                 loaded: list[Message], chain_input: Any, keys: dict[str, str]) -> None:
        self.history = history
        self.version = version
        self.new_input = new_input
        self.inner_input = inner_input
        self.inner_config = inner_config
        self.run_id = run_id
        self.loaded = loaded
        self.chain_input = chain_input
        self.keys = keys
        # Only a history that keeps runs keeps model calls; others pay nothing for them.
        self.recorder = CallRecorder() if history.records_runs else None
        self.started = time.perf_counter()

    def record(self, status: str, output: list[Message], model: str | None,
               error: str | None = None) -> Turn:
        """This turn as ``record_turn`` takes it.

        ``model`` is the composition's chat model; when it shows none (a model called inside
        a function), the run names the model of the turn's last recorded call, the one that
        usually gave the output.
        """
        recorded = self.recorder.calls if self.recorder is not None else []
        calls = (model_called_events(recorded, run_id=self.run_id, history=self.loaded,
                                     inputs=self.new_input, outputs=output,
                                     started=self.started)
                 if recorded else [])
        if model is None and recorded:
            model = recorded[-1].model
        return Turn(run_id=self.run_id, input=self.new_input, output=output, status=status,
                    history_version=self.version, model=model,
                    latency_ms=(time.perf_counter() - self.started) * 1000.0, error=error,
                    chain_input=self.chain_input, keys=self.keys, calls=calls)


class RunnableWithMessageHistory(Runnable[Any, Any]):
    """Wrap a runnable so each call loads a session's history first and saves the turn after.

    Args:
        runnable: The runnable to wrap (a callable or dict is coerced). It receives the history
            and the new input messages, shaped by the keys below.
        get_session_history: Returns the history for a session: a ``projections.ChatHistory``
            (recommended) or any object with ``messages`` and ``add_messages``. It may be
            ``async def``. Its parameters are filled from ``config["configurable"]``.
        input_messages_key: The key of a dict input holding the new message(s).
        output_messages_key: The key of a dict output holding the message(s) to save.
        history_messages_key: The key under which the history is added to a dict input; when
            unset, the history is prepended to the new messages.
        history_factory_config: The ``configurable`` fields the factory takes; default one
            ``session_id`` field.
        on_conflict: ``"merge"`` (default) appends each turn after whatever ran meanwhile,
            retrying for as long as the session moves (see ``ChatHistory.record_turn``);
            ``"raise"`` appends only if the session is still at the version the turn read,
            else raises ``ConcurrencyError`` and saves nothing of the turn.

    Attributes:
        model_name: The ``model_name`` of the first chat model in the composition (breadth
            first), recorded as each run's ``RunRecorded.model``; None when the composition
            shows none, and then each run names the model of its last recorded call.

    Raises:
        InvalidInputError: ``on_conflict`` is not "merge" or "raise", or the factory is not
            callable.
    """

    def __init__(
        self,
        runnable: Any,
        get_session_history: Callable[..., Any],
        *,
        input_messages_key: str | None = None,
        output_messages_key: str | None = None,
        history_messages_key: str | None = None,
        history_factory_config: Sequence[ConfigurableFieldSpec] | None = None,
        on_conflict: Literal["merge", "raise"] = "merge",
    ) -> None:
        if not callable(get_session_history):
            raise InvalidInputError("get_session_history must be callable")
        if on_conflict not in ("merge", "raise"):
            raise InvalidInputError(f"on_conflict must be 'merge' or 'raise', got {on_conflict!r}")
        self.runnable = coerce_to_runnable(runnable)
        self.get_session_history = get_session_history
        self.input_messages_key = input_messages_key
        self.output_messages_key = output_messages_key
        self.history_messages_key = history_messages_key
        self.history_factory_config = (list(history_factory_config) if history_factory_config
                                       else [DEFAULT_SESSION_SPEC])
        self.on_conflict = on_conflict
        self.model_name = _model_name(self.runnable)
        self._keys = {name: key for name, key in (("input", input_messages_key),
                                                 ("history", history_messages_key),
                                                 ("output", output_messages_key))
                      if key is not None}
        self._parameters = factory_parameters(get_session_history, self.history_factory_config)
        self.name = "RunnableWithMessageHistory"

    def __repr__(self) -> str:
        return f"RunnableWithMessageHistory({self.runnable!r})"

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        """LangChain's ``RunnableWithChatHistoryInput``: ``{input_key: str | message |
        messages}`` with both keys, ``{input_key: messages}`` with only the input key, else a
        list of messages."""
        return history_input_schema(self.input_messages_key, self.history_messages_key)

    def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
        """LangChain's ``RunnableWithChatHistoryOutput``: an object when a key is set, else a
        list of messages."""
        return history_output_schema(self.input_messages_key, self.output_messages_key,
                                     self.history_messages_key)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The wrapped runnable's fields plus the factory's, each once, sorted by id.

        Raises:
            InvalidInputError: Two different specs share an id.
        """
        specs: dict[str, ConfigurableFieldSpec] = {}
        for spec in [*self.runnable.config_specs, *self.history_factory_config]:
            if spec.id in specs and specs[spec.id] != spec:
                raise InvalidInputError(
                    f"conflicting config specs for {spec.id}: {[specs[spec.id], spec]}"
                )
            specs[spec.id] = spec
        return [specs[k] for k in sorted(specs)]

    def children(self) -> list[Runnable[Any, Any]]:
        """The wrapped runnable."""
        return [self.runnable]

    # -- preparing a turn ------------------------------------------------------------------
    def _arguments(self, config: RunnableConfig) -> tuple[list[Any], dict[str, Any]]:
        return session_arguments(self._parameters, self.history_factory_config,
                                 config["configurable"],
                                 input_messages_key=self.input_messages_key)

    def _turn(self, input: Any, config: RunnableConfig, history: TurnHistory,
              version: int | None, loaded: list[Message], new_input: list[Message]) -> _Turn:
        """Shape the wrapped runnable's input from the loaded history (LangChain's rules)."""
        inner_input = runnable_input(input, loaded, new_input,
                                     input_messages_key=self.input_messages_key,
                                     history_messages_key=self.history_messages_key)
        inner_config = child_config(config)
        inner_config["configurable"] = {**config["configurable"],
                                        "message_history": history.raw}
        run_id = str(config.get("run_id") or uuid.uuid4())
        chain_input = (chain_input_json(input, self.input_messages_key)
                       if history.records_runs else None)
        return _Turn(history, version, new_input, inner_input, inner_config, run_id,
                     loaded=loaded, chain_input=chain_input, keys=self._keys)

    def _history(self, config: RunnableConfig) -> TurnHistory:
        args, kwargs = self._arguments(config)
        history = self.get_session_history(*args, **kwargs)
        if inspect.isawaitable(history):
            history = _run_to_completion(history)
        return adapt_history(history)

    async def _ahistory(self, config: RunnableConfig) -> TurnHistory:
        args, kwargs = self._arguments(config)
        if inspect.iscoroutinefunction(self.get_session_history):
            history = await self.get_session_history(*args, **kwargs)
        else:
            # A sync factory may do I/O (open a database); keep it off the event loop.
            history = await asyncio.to_thread(self.get_session_history, *args, **kwargs)
            if inspect.isawaitable(history):
                history = await history
        return adapt_history(history)

    def _check(self, input: Any, config: RunnableConfig | None) -> tuple[RunnableConfig,
                                                                        list[Message]]:
        """Validate the config and input before anything is called; the turn's new messages."""
        config = ensure_config(config)
        self._arguments(config)
        keyed = self.history_messages_key or self.input_messages_key
        if keyed is not None and not isinstance(input, Mapping):
            raise InvalidInputError(
                f"with input_messages_key or history_messages_key set, the input must be a "
                f"dict, got {type(input).__name__}"
            )
        return config, input_messages(input, self.input_messages_key)

    def _begin(self, input: Any, config: RunnableConfig | None) -> _Turn:
        config, new_input = self._check(input, config)
        history = self._history(config)
        version, loaded = history.load()
        return self._turn(input, config, history, version, loaded, new_input)

    async def _abegin(self, input: Any, config: RunnableConfig | None) -> _Turn:
        config, new_input = self._check(input, config)
        history = await self._ahistory(config)
        version, loaded = await history.aload()
        return self._turn(input, config, history, version, loaded, new_input)

    # -- saving a turn ---------------------------------------------------------------------
    def _save(self, turn: _Turn, output: Any) -> None:
        """Save input + output in one write, or record why not and raise."""
        try:
            saved = output_messages(output, self.output_messages_key)
            turn.history.record_turn(turn.record("ok", saved, self.model_name),
                                     on_conflict=self.on_conflict)
        except Exception as e:
            self._fail(turn, "error", output, e)
            raise
        self._log_saved(turn, saved)

    async def _asave(self, turn: _Turn, output: Any) -> None:
        """Async ``_save``: the history's async twins, never its blocking methods."""
        try:
            saved = output_messages(output, self.output_messages_key)
            await turn.history.arecord_turn(turn.record("ok", saved, self.model_name),
                                            on_conflict=self.on_conflict)
        except Exception as e:
            await self._afail(turn, "error", output, e)
            raise
        self._log_saved(turn, saved)

    def _log_saved(self, turn: _Turn, saved: list[Message]) -> None:
        if logging_enabled():
            _log.debug("turn_saved", run_id=turn.run_id, history_version=turn.version,
                       messages=len(turn.new_input) + len(saved))

    def _failure(self, turn: _Turn, status: str, output: Any,
                 error: BaseException | None) -> Turn:
        try:
            partial = [] if output is None else output_messages(output, self.output_messages_key)
        except InvalidInputError:
            partial = []
        return turn.record(status, partial, self.model_name,
                           None if error is None else _describe(error))

    def _failed(self, turn: _Turn, status: str, record: Turn, error: BaseException | None,
                recording_error: ChatledgerError | None) -> None:
        """After recording a failed run: note a recording failure on the run's own error."""
        if recording_error is not None:
            if error is None:
                raise recording_error
            error.add_note(f"recording the run as {status} also failed: "
                           f"{_describe(recording_error)}")
        if logging_enabled():
            _log.info("run_recorded", run_id=turn.run_id, status=status, error=record.error)

    def _fail(self, turn: _Turn, status: str, output: Any, error: BaseException | None) -> None:
        """Record a failed or cancelled run in the log (where the history keeps runs)."""
        if not turn.history.records_runs:
            return
        record = self._failure(turn, status, output, error)
        try:
            turn.history.record_turn(record, on_conflict="merge")
        except ChatledgerError as e:
            self._failed(turn, status, record, error, e)
            return
        self._failed(turn, status, record, error, None)

    async def _afail(self, turn: _Turn, status: str, output: Any,
                     error: BaseException | None) -> None:
        """Async ``_fail``.

        The run is written by the history's ``record_turn`` in a thread that nothing can
        interrupt (``_in_thread_to_the_end``): a cancelled run is recorded while its task is
        being cancelled, often more than once (a timeout, ``asyncio.run`` shutting down), and
        the record must survive that. A cancellation that arrives meanwhile is raised after.
        """
        if not turn.history.records_runs:
            return
        record = self._failure(turn, status, output, error)
        problem = await _in_thread_to_the_end(
            lambda: turn.history.record_turn(record, on_conflict="merge"))
        if problem is None or isinstance(problem, ChatledgerError):
            self._failed(turn, status, record, error, problem)
            return
        raise problem

    # -- the Runnable surface --------------------------------------------------------------
    def invoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Run one turn: load the history, invoke the runnable, save input + output.

        Returns:
            Exactly what the wrapped runnable returned.

        Raises:
            InvalidInputError: Bad session config (naming the missing keys), an input or
                output that cannot be saved.
            ConcurrencyError: ``on_conflict="raise"`` and another turn was saved meanwhile.
            StoreError: The database failed; the turn is not saved.
        """
        turn = self._begin(input, config)
        try:
            with recording(turn.recorder):
                output = self.runnable.invoke(turn.inner_input, turn.inner_config)
        except Exception as e:
            self._fail(turn, "error", None, e)
            raise
        self._save(turn, output)
        return output

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None) -> Any:
        """Async ``invoke``; all history I/O uses the async twins."""
        turn = await self._abegin(input, config)
        try:
            with recording(turn.recorder):
                output = await self.runnable.ainvoke(turn.inner_input, turn.inner_config)
        except asyncio.CancelledError:
            await self._afail(turn, "cancelled", None, None)
            raise
        except Exception as e:
            await self._afail(turn, "error", None, e)
            raise
        await self._asave(turn, output)
        return output

    def batch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """One turn per input; every item's session config is checked before any runs.

        Raises:
            InvalidInputError: A config misses a session key; nothing runs.
        """
        configs = get_config_list(config, len(inputs))
        for item_config in configs:
            self._arguments(item_config)
        return super().batch(inputs, configs, return_exceptions=return_exceptions)

    async def abatch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Async ``batch``."""
        configs = get_config_list(config, len(inputs))
        for item_config in configs:
            self._arguments(item_config)
        return await super().abatch(inputs, configs, return_exceptions=return_exceptions)

    def stream(self, input: Any, config: RunnableConfig | None = None) -> Iterator[Any]:
        """Yield the wrapped runnable's chunks; save the turn once the stream is consumed.

        The saved output is the sum of the chunks as one whole message. Closing the stream
        early records a ``RunRecorded`` with status "cancelled" and the partial output, and
        adds nothing to the history.
        """
        turn = self._begin(input, config)
        chunks: list[Any] = []
        inner = self.runnable.stream(turn.inner_input, turn.inner_config)
        try:
            while True:
                # The recorder is current only while the chain runs, never between chunks,
                # where the caller's own code runs.
                with recording(turn.recorder):
                    chunk = next(inner, _END)
                if chunk is _END:
                    break
                chunks.append(chunk)
                yield chunk
        except GeneratorExit:
            close = getattr(inner, "close", None)
            if close is not None:
                with recording(turn.recorder):
                    close()
            self._fail(turn, "cancelled", aggregate(chunks), None)
            raise
        except Exception as e:
            self._fail(turn, "error", aggregate(chunks), e)
            raise
        self._save(turn, aggregate(chunks))

    async def astream(self, input: Any, config: RunnableConfig | None = None) -> AsyncIterator[Any]:
        """Async ``stream``; closing or cancelling it records the partial output."""
        turn = await self._abegin(input, config)
        chunks: list[Any] = []
        inner = self.runnable.astream(turn.inner_input, turn.inner_config)
        try:
            while True:
                with recording(turn.recorder):
                    try:
                        chunk = await inner.__anext__()
                    except StopAsyncIteration:
                        break
                chunks.append(chunk)
                yield chunk
        except (GeneratorExit, asyncio.CancelledError):
            try:
                # Closing the chain closes every stream in it (``closing_stream``), so each
                # model in it reports its call before the run is recorded.
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    with recording(turn.recorder):
                        await aclose()
            finally:
                await self._afail(turn, "cancelled", aggregate(chunks), None)
            raise
        except Exception as e:
            await self._afail(turn, "error", aggregate(chunks), e)
            raise
        await self._asave(turn, aggregate(chunks))
