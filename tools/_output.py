"""Output for people (aligned plain-text tables) and for programs (JSON), plus progress bars."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec

from chatledger.eventstore import (
    AIMessage,
    ChatMessage,
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    HistoryCleared,
    Message,
    MessageAppended,
    MessageRedacted,
    PayloadErased,
    Problem,
    Record,
    RunRecorded,
    SessionForked,
    SessionInfo,
    SessionKey,
    SessionTagged,
    ThreadDeleted,
    ToolMessage,
)

__all__ = [
    "echo_json",
    "echo_rows",
    "event_summary",
    "format_time",
    "key_text",
    "message_dict",
    "message_text",
    "plural",
    "problem_dict",
    "progress",
    "record_dict",
    "role_of",
    "safe",
    "session_dict",
    "shorten",
    "table",
]

T = TypeVar("T")

# Messages by role for people: what the LangChain how-to prints, in one word.
_ROLE = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "system": "system",
         "tool": "tool", "function": "function"}


def echo_rows(fmt: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as JSON lines (``nl``) or CSV with a header (``csv``, nested values
    as JSON text, a field holding a line break quoted); a spreadsheet formula prefix is kept
    as text by a leading quote."""
    if fmt == "nl":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    buffer = io.StringIO()
    _csv_row(buffer, columns)
    for row in rows:
        _csv_row(buffer, [_csv_cell(row.get(c)) for c in columns])
    click.echo(buffer.getvalue(), nl=False)


def _csv_row(out: io.StringIO, cells: Sequence[str]) -> None:
    # The writer quotes a field holding any character of its line terminator, so "\r\n" makes
    # it quote a lone "\r" too (readers and spreadsheets take one as a line break, and the text
    # after it would start a row of its own); the row then ends in "\n" alone.
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(cells)
    out.write(line.getvalue()[:-2] + "\n")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    # =, +, -, @, and a tab or carriage return before one, start formulas in spreadsheets:
    # content must not run as one (CSV injection).
    return "'" + text if text[:1] in _FORMULA_STARTS and not _NUMBER.match(text) else text


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?\Z")


def echo_json(value: Any, *, err: bool = False) -> None:
    """Print one JSON document (non-ASCII kept as is) to stdout, or stderr with ``err``."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2), err=err)


def format_time(moment: datetime) -> str:
    """A UTC time to the microsecond, as stored: pasted into ``--as-of`` it names that event."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# C0 and C1 controls (ESC starts terminal escape sequences, OSC 8 links, title changes...) and
# the bidi overrides and isolates that make text display in another order than it is stored.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: str, *, lines: bool = False) -> str:
    """``text`` with control and bidi characters escaped (``\\x1b``, ``\\u202e``), so content
    from messages cannot drive the terminal or disguise itself; ``lines`` keeps newlines."""
    return _UNSAFE.sub(lambda m: m.group() if lines and m.group() == "\n"
                       else ascii(m.group())[1:-1], text)


def plural(n: int, noun: str) -> str:
    """``1 message``, ``2 messages`` (thousands separated)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters (newlines shown as spaces, cut with an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain aligned columns: a header, a rule, then the rows; the last column is not padded.

    Every cell goes through ``safe``: tables are for people, and content is untrusted.
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else safe(str(c)) for c in r]
                                           for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def key_text(key: SessionKey) -> str:
    """A key as the command line takes it: ``name=value`` pairs separated by spaces."""
    return " ".join(f"{name}={value}" for name, value in key.parts.items())


def role_of(message: Message) -> str:
    """The message's role in one word (user, assistant, system, tool, …)."""
    if isinstance(message, ChatMessage):
        return message.role
    return _ROLE.get(message.type, message.type)


def message_text(message: Message) -> str:
    """The message's text, with tool calls and tool results spelled out."""
    text = message.text
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(f"{c['name']}({json.dumps(c.get('args', {}), ensure_ascii=False)})"
                          for c in message.tool_calls)
        text = f"{text} [calls {calls}]".strip()
    if isinstance(message, ToolMessage):
        text = f"[{message.tool_call_id}] {text}"
    return text


def message_dict(message: Message) -> dict[str, Any]:
    """The message as chatledger stores it: flat JSON tagged by ``type``."""
    return msgspec.to_builtins(message)  # type: ignore[no-any-return]


def record_dict(rec: Record) -> dict[str, Any]:
    """Every field of a stored event, JSON-ready."""
    return {
        "position": rec.position,
        "stream_id": rec.stream_id,
        "key": rec.key.parts,
        "version": rec.version,
        "event_id": rec.event_id,
        "type": rec.type,
        "recorded_at": rec.recorded_at.isoformat(),
        "event": msgspec.to_builtins(rec.event),
        "meta": rec.meta,
        "digest": rec.digest,
        "chain": rec.chain,
    }


def session_dict(info: SessionInfo) -> dict[str, Any]:
    """A catalog row, JSON-ready."""
    return {
        "key": info.key.parts,
        "stream_id": info.stream_id,
        "version": info.version,
        "message_count": info.message_count,
        "created_at": info.created_at.isoformat(),
        "last_active": info.last_active.isoformat(),
        "tags": list(info.tags),
        "cursor": info.cursor,
    }


def problem_dict(problem: Problem) -> dict[str, Any]:
    """A ``verify`` finding, JSON-ready."""
    return msgspec.to_builtins(problem)  # type: ignore[no-any-return]


def event_summary(rec: Record, width: int = 60) -> str:
    """What an event says, in one short line."""
    match rec.event:
        case MessageAppended(message=message):
            text = f"{role_of(message)}: {message_text(message)}"
        case SessionForked(parent=parent, parent_version=version, messages=messages):
            origin = " ".join(f"{k}={v}" for k, v in sorted(parent.items()))
            text = f"forked from {origin} at version {version} ({plural(len(messages), 'message')})"
        case HistoryCleared(reason=reason):
            text = "history cleared" + (f": {reason}" if reason else "")
        case MessageRedacted(version=version, reason=reason):
            text = f"erased version {version}" + (f": {reason}" if reason else "")
        case RunRecorded(status=status, history_version=hv, output=output, error=error,
                         input_versions=inputs, output_versions=outputs):
            versions = [*inputs, *outputs]
            said = message_text(output[-1]) if output else error or ""
            if versions and not said:
                said = f"messages v{versions[0]}-v{versions[-1]}"
            text = f"run {status} on history v{hv}: {said}"
        case SessionTagged(added=added, removed=removed):
            text = " ".join([*(f"+{t}" for t in added), *(f"-{t}" for t in removed)])
        case CheckpointSaved(checkpoint_id=cid, metadata=metadata, messages=messages):
            step = metadata.get("step")
            more = f", +{len(messages)} messages" if messages else ""
            text = f"step {step}{more}, checkpoint {cid}"
        case CheckpointWritesSaved(task_id=task, writes=writes):
            text = f"writes of task {task}: " + ", ".join(sorted({w[1] for w in writes}))
        case CheckpointsDeleted(checkpoint_ids=ids, reason=reason):
            text = f"{len(ids)} checkpoints deleted" + (f": {reason}" if reason else "")
        case ThreadDeleted(reason=reason):
            text = "thread deleted" + (f": {reason}" if reason else "")
        case PayloadErased(erased_type=erased_type):
            text = f"({erased_type}; payload erased)"
        case _:
            text = ""
    return shorten(text, width)


@contextlib.contextmanager
def progress(items: Iterable[T], *, length: int | None, label: str) -> Iterator[Iterable[T]]:
    """A progress bar on stderr when it is a terminal (and the work is long); else the items."""
    if length is not None and length >= 1000 and sys.stderr.isatty():
        with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield items


@contextlib.contextmanager
def counter_bar(*, length: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A ``progress(n)`` callback driving a bar on stderr (terminal and long work only)."""
    if length >= 1000 and sys.stderr.isatty():
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar.update
    else:
        yield None
