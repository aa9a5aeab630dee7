"""Replay recorded runs: re-run each turn against the exact history it saw, and diff the outputs.

Each ``RunRecorded`` event names the turn's input messages (by version) and the history
version the run read. Replay loads that version of the history (``load_history_at``), invokes the chain with
the history followed by the input messages, and compares the new output with the recorded one.
Outputs are compared by role, text and tool calls (name and arguments); ids, usage and latency
are expected to differ between runs and are ignored.
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
    ChatledgerError,
    EventStore,
    Message,
    NotFoundError,
    SessionKey,
)
from chatledger.projections import recorded_turns
from chatledger.tools._output import message_text, role_of

__all__ = ["ReplayedRun", "load_chain", "render", "replay", "run_dict"]


class ReplayedRun(msgspec.Struct, frozen=True):
    """One recorded run next to its replay."""

    run_id: str
    version: int
    history_version: int
    status: str
    recorded: list[Message]
    replayed: list[Message]
    error: str | None
    diff: str
    seconds: float

    @property
    def equal(self) -> bool:
        """True when the replay said what was recorded (role, text and tool calls)."""
        return not self.diff


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


def _compare(recorded: Sequence[Message], replayed: Sequence[Message],
             recorded_error: str | None, error: str | None) -> str:
    before = render(recorded) + ([f"error: {recorded_error}"] if recorded_error else [])
    after = render(replayed) + ([f"error: {error}"] if error else [])
    if before == after:
        return ""
    return "\n".join(difflib.unified_diff(before, after, "recorded", "replayed", lineterm=""))


def replay(store: EventStore, key: SessionKey, chain: Any, *,
           run_id: str | None = None) -> list[ReplayedRun]:
    """Replay the session's recorded runs (or the one with ``run_id``) through ``chain``.

    Raises:
        NotFoundError: The session has no recorded runs, or none with ``run_id``.
    """
    runs = recorded_turns(store.read(key))
    if run_id is not None:
        runs = [t for t in runs if t.run.run_id == run_id]
    if not runs:
        which = f"run {run_id!r}" if run_id else "recorded runs"
        raise NotFoundError(f"session {key.stream_id!r} has no {which} (runs are recorded by "
                            "runtime.RunnableWithMessageHistory)")
    out = []
    for turn in runs:
        run = turn.run
        _, history = store.load_history_at(key, version=run.history_version)
        started = time.perf_counter()
        error = None
        replayed: list[Message] = []
        try:
            replayed = _as_messages(chain.invoke([*history, *turn.input]))
        except Exception as e:  # a failing chain is a replay result, shown in the diff
            error = f"{type(e).__name__}: {e}"
        recorded: list[Message] = list(turn.output)
        out.append(ReplayedRun(
            run_id=run.run_id, version=turn.version, history_version=run.history_version,
            status=run.status, recorded=recorded, replayed=replayed, error=error,
            diff=_compare(recorded, replayed, run.error, error),
            seconds=time.perf_counter() - started))
    return out


def run_dict(run: ReplayedRun) -> dict[str, Any]:
    """A replayed run, JSON-ready."""
    return {"run_id": run.run_id, "version": run.version, "history_version": run.history_version,
            "status": run.status, "equal": run.equal,
            "recorded": [msgspec.to_builtins(m) for m in run.recorded],
            "replayed": [msgspec.to_builtins(m) for m in run.replayed],
            "error": run.error, "diff": run.diff, "seconds": round(run.seconds, 4)}

