"""Replay recorded turns through the app's chain, or re-send their exact model requests; diff.

A turn recorded by ``RunnableWithMessageHistory`` keeps the chain's whole input
(``RunRecorded.chain_input``, its new messages by reference), the history version it read, and
each model call (``ModelCalled``) with the exact messages the model received. Replay rebuilds
what the wrapped runnable received (the history as of that version, shaped by the recorded
keys, or by the keys of a ``RunnableWithMessageHistory`` given as the chain) and either

- runs it through a chain (``chain=``): the output is compared with the recorded output, and
  the requests the chain's models received with the recorded requests; or
- re-sends each recorded request, with its recorded parameters, to a model (``model=``),
  streamed if it was streamed: each reply is compared with the recorded reply.

Messages are compared by role, text and tool calls; ids, usage and latency differ between runs
and are ignored. Turns recorded before chain inputs and model calls were (``partly_recorded``)
replay as they did then: the chain (or model) gets the history followed by the input messages.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from chatledger.eventstore import (
    AIMessage,
    AIMessageChunk,
    ChatledgerError,
    EventStore,
    InvalidInputError,
    KeyLike,
    Message,
    NotFoundError,
    SessionKey,
)
from chatledger.projections import RecordedTurn, recorded_turns, resolve_call
from chatledger.runtime import (
    CallRecorder,
    RunnableWithMessageHistory,
    output_messages,
    recording,
    restore_chain_input,
    runnable_input,
)
from chatledger.runtime.models import (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
)
from chatledger.tools._output import message_text, role_of

__all__ = ["ReplayedRun", "load_chain", "render", "replay", "run_dict"]


class ReplayedRun(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded turn next to its replay.

    Attributes:
        turn: The turn's number in its session (1 = the first recorded run).
        partly_recorded: The turn was recorded before chain inputs and model calls were, so it
            was replayed from its history and input messages alone.
        diff: A unified diff of the recorded and replayed output ("" when the same).
        request_diff: A unified diff of the model requests, when the chain's models received
            something else than was recorded ("" when the same or not compared).
        notes: Why the replay may not be exact (values that were not JSON, erased messages).
    """

    turn: int
    run_id: str
    version: int
    history_version: int
    status: str
    partly_recorded: bool
    recorded: list[Message]
    replayed: list[Message]
    error: str | None
    diff: str
    request_diff: str = ""
    notes: list[str] = []
    seconds: float = 0.0

    @property
    def equal(self) -> bool:
        """True when the replay said what was recorded, from the same model requests."""
        return not self.diff and not self.request_diff


# Failures of the way to the model, not of the model: the server is down or refuses us, or
# its reply is no Chat Completions reply at all. Nothing was said to compare, so replay stops
# with the error instead of reporting a difference. An error status the model's side gives a
# request (400, 422: too long, a parameter it no longer takes) stays a replay result.
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
)


def load_chain(spec: str) -> Any:
    """Load ``module:attr``: a runnable (anything with ``invoke``), or a callable returning one.

    A class counts as a callable: ``runtime.models:OfflineChatModel`` builds the offline model.

    The current directory is importable, as with ``python -m``.

    Raises:
        ChatledgerError: Bad syntax, the module or attribute is missing, or it is no runnable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ChatledgerError(f"--chain {spec!r} must look like module:attr, e.g. app.chains:chat")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        target: Any = importlib.import_module(module_name)
        for name in attr.split("."):
            target = getattr(target, name)
    except (ImportError, AttributeError) as e:
        raise ChatledgerError(f"cannot load chain {spec!r}: {e}") from e
    if isinstance(target, type) or (not hasattr(target, "invoke") and callable(target)):
        try:
            target = target()
        except Exception as e:  # the user's factory: any failure is a bad --chain
            raise ChatledgerError(f"chain {spec!r} is not a runnable, and calling it with no "
                                  f"arguments to build one failed: {type(e).__name__}: {e}") from e
    if not hasattr(target, "invoke"):
        raise ChatledgerError(f"chain {spec!r} is a {type(target).__name__}, not a runnable "
                              "(an object with invoke) or a callable returning one")
    return target


def _as_messages(output: Any) -> list[Message]:
    if isinstance(output, Message):
        return [output]
    if isinstance(output, str):
        return [AIMessage(content=output)]
    if isinstance(output, Sequence) and all(isinstance(m, Message) for m in output):
        return list(output)
    raise TypeError(f"the chain returned a {type(output).__name__}, not messages")


def render(messages: Sequence[Message]) -> list[str]:
    """Messages as the lines ``replay`` compares: ``role: text`` with tool calls spelled out."""
    lines: list[str] = []
    for m in messages:
        lines.extend(f"{role_of(m)}: {line}" for line in (message_text(m) or "").splitlines()
                     or [""])
    return lines


def _diff(before: list[str], after: list[str], a: str, b: str) -> str:
    if before == after:
        return ""
    return "\n".join(difflib.unified_diff(before, after, a, b, lineterm=""))


def _compare(recorded: Sequence[Message], replayed: Sequence[Message],
             recorded_error: str | None, error: str | None) -> str:
    before = render(recorded) + ([f"error: {recorded_error}"] if recorded_error else [])
    after = render(replayed) + ([f"error: {error}"] if error else [])
    return _diff(before, after, "recorded", "replayed")


def _requests(calls: Sequence[tuple[str, list[Message]]]) -> list[str]:
    lines = []
    for i, (model, request) in enumerate(calls):
        lines.append(f"call {i} ({model}):")
        lines.extend(f"  {line}" for line in render(request))
    return lines


def _select(turns: list[RecordedTurn], *, turn: int | None, run_id: str | None,
            versions: tuple[int, int] | None) -> list[tuple[int, RecordedTurn]]:
    numbered = list(enumerate(turns, start=1))
    if turn is not None:
        numbered = [(n, t) for n, t in numbered if n == turn]
    if run_id is not None:
        numbered = [(n, t) for n, t in numbered if t.run.run_id == run_id]
    if versions is not None:
        low, high = versions
        numbered = [(n, t) for n, t in numbered if low <= t.version <= high]
    return numbered


def _shape(chain: Any, turn: RecordedTurn, history: list[Message],
           notes: list[str]) -> tuple[Any, Any, str | None]:
    """The runnable to invoke, what it receives, and the output key to read its output with."""
    run = turn.run
    inner = chain.runnable if isinstance(chain, RunnableWithMessageHistory) else chain
    if run.chain_input is None:
        return inner, [*history, *turn.input], None
    if isinstance(chain, RunnableWithMessageHistory):
        in_key, history_key = chain.input_messages_key, chain.history_messages_key
        out_key = chain.output_messages_key
    else:
        in_key, history_key = run.keys.get("input"), run.keys.get("history")
        out_key = run.keys.get("output")
    value, lossy = restore_chain_input(run.chain_input, turn.input)
    notes.extend(f"input value {text} was not JSON; replayed with its repr" for text in lossy)
    return inner, runnable_input(value, history, turn.input, input_messages_key=in_key,
                                 history_messages_key=history_key), out_key


def _replay_chain(chain: Any, turn: RecordedTurn, history: list[Message],
                  notes: list[str]) -> tuple[list[Message], str | None, str]:
    inner, value, out_key = _shape(chain, turn, history, notes)
    recorder = CallRecorder()
    replayed: list[Message] = []
    error = None
    try:
        with recording(recorder):
            output = inner.invoke(value)
        replayed = (_as_messages(output) if turn.run.chain_input is None
                    else output_messages(output, out_key))
    except _TRANSPORT_ERRORS:
        raise
    except Exception as e:  # a failing chain is a replay result, shown in the diff
        error = f"{type(e).__name__}: {e}"
    request_diff = ""
    if turn.calls and recorder.calls:
        before = []
        for call in turn.calls:
            request, _, complete = resolve_call(call, history, turn)
            if not complete:
                notes.append(f"call {call.index}: a message of its request is gone (erased?)")
            before.append((call.model, request))
        after = [(c.model, c.request) for c in recorder.calls]
        request_diff = _diff(_requests(before), _requests(after), "recorded request",
                             "replayed request")
    return replayed, error, request_diff


def _send(model: Any, request: list[Message], *, stream: bool, stop: Any = None) -> Message:
    """``model``'s reply to ``request``; streamed (and its chunks added up) when ``stream``."""
    if not stream:
        return _as_messages(model.invoke(request) if stop is None
                            else model.invoke(request, stop=stop))[-1]
    chunks = list(model.stream(request) if stop is None else model.stream(request, stop=stop))
    if not chunks:
        raise ValueError("the model streamed no reply")
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return _as_messages(total.to_message() if isinstance(total, AIMessageChunk) else total)[-1]


def _replay_model(model: Any, turn: RecordedTurn, history: list[Message],
                  notes: list[str]) -> tuple[list[Message], list[Message], str | None]:
    """Re-send each recorded request, streamed if it was; the recorded and the new replies."""
    if not turn.calls:
        try:
            return list(turn.output), [_send(model, [*history, *turn.input], stream=False)], None
        except _TRANSPORT_ERRORS:
            raise
        except Exception as e:  # a failing model is a replay result, shown in the diff
            return list(turn.output), [], f"{type(e).__name__}: {e}"
    recorded: list[Message] = []
    replayed: list[Message] = []
    for call in turn.calls:
        request, response, complete = resolve_call(call, history, turn)
        if not complete:
            notes.append(f"call {call.index}: a message of its request is gone (erased?)")
        if response is not None:
            recorded.append(response)
        try:
            # A chatledger ChatModel takes the recorded parameters; any other runnable is
            # called as it is. A streamed call is re-sent as a stream: the request says so.
            with_parameters = getattr(model, "with_parameters", None)
            if with_parameters is None:
                replayed.append(_send(model, request, stream=call.stream))
            else:
                replayed.append(_send(with_parameters(dict(call.parameters)), request,
                                      stream=call.stream, stop=call.parameters.get("stop")))
        except _TRANSPORT_ERRORS:
            raise
        except Exception as e:  # a failing model is a replay result, shown in the diff
            return recorded, replayed, f"{type(e).__name__}: {e}"
    return recorded, replayed, None


def replay(store: EventStore, key: KeyLike, chain: Any = None, *, model: Any = None,
           turn: int | None = None, run_id: str | None = None,
           versions: tuple[int, int] | None = None) -> list[ReplayedRun]:
    """Replay a session's recorded turns: all, one (``turn``, ``run_id``) or a version range.

    Args:
        store: The log.
        key: The session.
        chain: The app's chain: its wrapped ``RunnableWithMessageHistory`` (its runnable and
            keys are used; nothing is written) or the runnable it wraps.
        model: Instead of ``chain``, a chat model to re-send each recorded model request to,
            with the recorded parameters (``ChatModel.with_parameters``).
        turn: Only the turn with this number (1 = the session's first recorded run).
        run_id: Only the run with this id.
        versions: Only runs recorded at versions ``low..high`` (inclusive).

    Raises:
        InvalidInputError: Neither or both of ``chain`` and ``model``; ``turn`` below 1.
        NotFoundError: The session has no recorded runs, ``turn`` is beyond its last one (the
            message gives the valid range), or no run matches the selection.
        ModelError: A model could not be reached or gave no reply to compare: a connection
            failure, a timeout, an authentication, not-found, rate-limit or server error, a
            malformed reply. Any other failure of the chain or model is a replay result.
    """
    if (chain is None) == (model is None):
        raise InvalidInputError("replay needs a chain or a model (one of them)")
    if turn is not None and turn < 1:
        raise InvalidInputError(f"turn must be 1 or more (1 = the first recorded run), "
                                f"got {turn}")
    stream_id = SessionKey.coerce(key).stream_id
    turns = recorded_turns(store.read(key))
    if turns and turn is not None and turn > len(turns):
        valid = "1" if len(turns) == 1 else f"1-{len(turns)}"
        raise NotFoundError(f"turn {turn} is out of range: session {stream_id!r} has "
                            f"{len(turns)} recorded turn{'' if len(turns) == 1 else 's'} "
                            f"({valid})")
    selected = _select(turns, turn=turn, run_id=run_id, versions=versions)
    if not selected:
        which = "recorded runs" if not turns else "recorded runs matching the selection"
        raise NotFoundError(f"session {stream_id!r} has no {which} (runs are recorded by "
                            "runtime.RunnableWithMessageHistory)")
    out = []
    for number, recorded_turn in selected:
        run = recorded_turn.run
        _, history = store.load_history_at(key, version=run.history_version)
        notes: list[str] = [] if recorded_turn.complete else ["a message of the turn is gone"]
        started = time.perf_counter()
        request_diff = ""
        recorded: list[Message] = list(recorded_turn.output)
        if chain is not None:
            replayed, error, request_diff = _replay_chain(chain, recorded_turn, history, notes)
        else:
            recorded, replayed, error = _replay_model(model, recorded_turn, history, notes)
        out.append(ReplayedRun(
            turn=number, run_id=run.run_id, version=recorded_turn.version,
            history_version=run.history_version, status=run.status,
            partly_recorded=run.chain_input is None, recorded=recorded, replayed=replayed,
            error=error, diff=_compare(recorded, replayed, run.error, error),
            request_diff=request_diff, notes=notes, seconds=time.perf_counter() - started))
    return out


def run_dict(run: ReplayedRun) -> dict[str, Any]:
    """A replayed run, JSON-ready."""
    return {"turn": run.turn, "run_id": run.run_id, "version": run.version,
            "history_version": run.history_version, "status": run.status, "equal": run.equal,
            "partly_recorded": run.partly_recorded,
            "recorded": [msgspec.to_builtins(m) for m in run.recorded],
            "replayed": [msgspec.to_builtins(m) for m in run.replayed],
            "error": run.error, "diff": run.diff, "request_diff": run.request_diff,
            "notes": run.notes, "seconds": round(run.seconds, 4)}
