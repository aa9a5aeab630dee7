"""What happens inside a turn, recorded without callbacks.

``RunnableWithMessageHistory`` puts a ``CallRecorder`` in a ``contextvars`` variable for the
length of a turn; the chat-model base (``runtime.models.ChatModel``) reports every call it
serves to the recorder it finds there, whatever runnable it sits in and however it is called
(invoke, ainvoke, stream, astream, batch; worker threads and tasks copy the context). With no
recorder set, a model call costs one ``ContextVar.get``.

At the end of the turn, ``model_called_events`` turns the calls into ``ModelCalled`` events
whose requests refer to the turn's history and input messages instead of copying them, and
``chain_input_json``/``restore_chain_input`` keep the chain's whole input as JSON with its new
messages replaced by a reference to the run's input.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Union

import msgspec

from chatledger.eventstore import AnyMessage, InvalidInputError, Message, MessageRef, ModelCalled
from chatledger.projections import from_langchain_object, is_langchain_message

__all__ = [
    "INPUT_REF",
    "CallRecorder",
    "ModelCall",
    "chain_input_json",
    "current_recorder",
    "model_called_events",
    "recording",
    "restore_chain_input",
]

INPUT_REF = "$input"
_MESSAGE = "$message"
_REPR = "$repr"


class ModelCall(msgspec.Struct, frozen=True, kw_only=True):
    """One chat-model call as the model base saw it (messages are the objects it was given)."""

    provider: str
    model: str
    parameters: dict[str, Any]
    request: list[Message]
    response: Union[Message, None]
    stream: bool
    started: float  # time.perf_counter() when the call began
    latency_ms: float
    error: Union[str, None] = None


class CallRecorder:
    """Collects the model calls of one turn, from any thread or task of it."""

    __slots__ = ("_lock", "calls")

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []
        self._lock = threading.Lock()

    def add(self, call: ModelCall) -> None:
        """Note one finished (or failed) call."""
        with self._lock:
            self.calls.append(call)


_current: ContextVar[Union[CallRecorder, None]] = ContextVar("chatledger_call_recorder",
                                                             default=None)


def current_recorder() -> CallRecorder | None:
    """The recorder of the turn running in this context, if any."""
    return _current.get()


@contextmanager
def recording(recorder: CallRecorder | None) -> Iterator[CallRecorder | None]:
    """Make ``recorder`` the current one inside the block (None: record nothing)."""
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        try:
            _current.reset(token)
        except ValueError:
            # A generator finalised from another context (garbage collection, another task):
            # that context never saw the set, so there is nothing to undo there.
            pass


# -- requests by reference -------------------------------------------------------------------
def _request(messages: Sequence[Message], history: Sequence[Message],
             inputs: Sequence[Message]) -> list[AnyMessage | MessageRef]:
    """``messages`` with runs of history (by identity) and input messages as references."""
    n = len(history)
    if n:
        # The usual prompt: a few rendered messages, the whole history in order, the input.
        # Found with C-level identity checks, so a long history costs microseconds.
        first = history[0]
        for j, message in enumerate(messages):
            if message is first:
                if all(map(operator.is_, messages[j:j + n], history)) and len(messages) >= j + n:
                    return [*_request(messages[:j], (), inputs),
                            MessageRef(source="history", start=0, stop=n),
                            *_request(messages[j + n:], (), inputs)]
                break
    return _request_slow(messages, history, inputs)


def _request_slow(messages: Sequence[Message], history: Sequence[Message],
                  inputs: Sequence[Message]) -> list[AnyMessage | MessageRef]:
    out: list[AnyMessage | MessageRef] = []
    where: dict[int, int] | None = None
    expect = 0
    for message in messages:
        source, index = "", -1
        if 0 <= expect < len(history) and history[expect] is message:
            source, index = "history", expect
        else:
            if where is None:
                where = {id(m): i for i, m in enumerate(history)}
            found = where.get(id(message))
            if found is not None and history[found] is message:
                source, index = "history", found
            else:
                for i, item in enumerate(inputs):
                    if item is message or item == message:
                        source, index = "input", i
                        break
        if not source:
            out.append(message)  # type: ignore[arg-type]
            expect = -1
            continue
        last = out[-1] if out else None
        if isinstance(last, MessageRef) and last.source == source and last.stop == index:
            out[-1] = MessageRef(source=source, start=last.start, stop=index + 1)
        else:
            out.append(MessageRef(source=source, start=index, stop=index + 1))
        expect = index + 1 if source == "history" else -1
    return out


def _response(message: Message | None, outputs: Sequence[Message]) -> AnyMessage | MessageRef | None:
    if message is None:
        return None
    for i, item in enumerate(outputs):
        if item is message or item == message:
            return MessageRef(source="output", start=i, stop=i + 1)
    return message  # type: ignore[return-value]


def model_called_events(calls: Sequence[ModelCall], *, run_id: str,
                        history: Sequence[Message], inputs: Sequence[Message],
                        outputs: Sequence[Message], started: float) -> list[ModelCalled]:
    """The ``ModelCalled`` events of a turn's calls, sharing its messages by reference.

    ``started`` is the run's start (``time.perf_counter()``), for each call's ``offset_ms``.
    """
    events = []
    for index, call in enumerate(calls):
        response = call.response
        metadata = response.response_metadata if response is not None else {}
        usage = getattr(response, "usage_metadata", None)
        finish = metadata.get("finish_reason")
        events.append(ModelCalled(
            run_id=run_id, index=index, provider=call.provider, model=call.model,
            parameters=call.parameters, request=_request(call.request, history, inputs),
            response=_response(response, outputs),
            usage=dict(usage) if usage else None,
            finish_reason=finish if isinstance(finish, str) else None,
            response_id=response.id if response is not None else None,
            stream=call.stream, offset_ms=max(0.0, (call.started - started) * 1000.0),
            latency_ms=call.latency_ms, error=call.error))
    return events


# -- the chain's input as JSON ---------------------------------------------------------------
def _form(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, Message) or is_langchain_message(value):
        return "message"
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], list):
        return "nested"
    return "messages"


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Message):
        return {_MESSAGE: msgspec.to_builtins(value)}
    if is_langchain_message(value):
        try:
            return {_MESSAGE: msgspec.to_builtins(from_langchain_object(value))}
        except InvalidInputError:
            return {_REPR: repr(value)}  # as for any other value that is not JSON
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    # Not JSON: kept as its repr so the run still records it; replay reports it.
    return {_REPR: repr(value)}


def chain_input_json(value: Any, input_messages_key: str | None) -> Any:
    """The chain's whole input as JSON, its new messages replaced by ``{"$input": form}``.

    The messages value is chosen by the wrapper's rule (``input_messages_key``, else a dict's
    only key, else "input"); ``form`` says how to rebuild it from the run's input messages.
    """
    if isinstance(value, Mapping):
        name = (input_messages_key if input_messages_key is not None
                else (next(iter(value)) if len(value) == 1 else "input"))
        return {str(k): ({INPUT_REF: _form(v)} if k == name else _json(v))
                for k, v in value.items()}
    return {INPUT_REF: _form(value)}


def _from_ref(form: str, inputs: Sequence[Message]) -> Any:
    if form == "text":
        return inputs[0].content if inputs else ""
    if form == "message":
        return inputs[0] if inputs else None
    if form == "nested":
        return [list(inputs)]
    return list(inputs)


def _restore(value: Any, inputs: Sequence[Message], lossy: list[str]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and INPUT_REF in value:
            return _from_ref(value[INPUT_REF], inputs)
        if len(value) == 1 and _MESSAGE in value:
            return msgspec.convert(value[_MESSAGE], AnyMessage)  # type: ignore[arg-type]
        if len(value) == 1 and _REPR in value:
            lossy.append(value[_REPR])
            return value[_REPR]
        return {k: _restore(v, inputs, lossy) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, inputs, lossy) for v in value]
    return value


def restore_chain_input(recorded: Any, inputs: Sequence[Message]) -> tuple[Any, list[str]]:
    """The chain input ``chain_input_json`` recorded, rebuilt with the run's input messages.

    Returns the input and the reprs of values that were not JSON (stand-ins in the rebuilt
    input, so a replay that depends on them cannot be exact).
    """
    lossy: list[str] = []
    return _restore(recorded, inputs, lossy), lossy
