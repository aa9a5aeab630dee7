"""Export session logs: message JSON lines, OpenAI fine-tuning JSONL, or Parquet.

Every export streams: rows are read page by page and written as they come, so memory stays
flat however large the log. The file is written beside its target and renamed at the end, so
an error (or a rejected ``--strict`` export) leaves no half file.

Formats:
    jsonl: one line per message in the log (messages before a clear included), in log order:
        ``{"stream_id", "key", "version", "index", "position", "recorded_at", "message"}``,
        where ``message`` is chatledger's own message JSON (flat, tagged by ``type``; decode it
        with ``msgspec.convert(obj, eventstore.AnyMessage)``) and ``index`` orders the
        messages one event carries (a fork's inherited history).
    openai: one line per session, ``{"messages": [...]}``, the session's current history in
        OpenAI's fine-tuning chat format, checked first (see ``tools._finetune``). Invalid
        conversations are skipped and counted; with ``strict`` the export fails instead.
    parquet: the ``jsonl`` rows as a table (``key`` and ``message`` as JSON text, plus the
        message ``type`` and its plain ``text``); needs pyarrow (``chatledger[parquet]``).
    otel: one OTLP/JSON document (``resourceSpans``) of OpenTelemetry GenAI spans: a span per
        recorded turn and a ``chat {model}`` span per model call (see ``tools._otel``);
        message content only with ``include_content``; optionally posted to a collector.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from typing import Any

import msgspec

from chatledger.eventstore import (
    ChatledgerError,
    CheckpointSaved,
    EventStore,
    MessageAppended,
    NotFoundError,
    Record,
    SessionForked,
    SessionInfo,
    SessionKey,
)
from chatledger.tools._files import atomic_path, database_file, open_output, refuse_database
from chatledger.tools._finetune import InvalidExample, finetune_example
from chatledger.tools._otel import otel_request, post_otlp, turn_spans
from chatledger.tools._output import plural, progress

__all__ = ["FORMATS", "ExportRejected", "ExportSummary", "export"]

FORMATS = ("jsonl", "openai", "parquet", "otel")
PAGE = 500
PARQUET_BATCH = 10_000

_encode = msgspec.json.Encoder().encode


class ExportSummary(msgspec.Struct, frozen=True):
    """What an export wrote (or, when ``rejected``, would have written)."""

    format: str
    path: str
    messages: int = 0
    conversations: int = 0
    skipped: int = 0
    first_problem: str | None = None
    spans: int = 0


class ExportRejected(ChatledgerError):
    """A ``strict`` export met invalid conversations; nothing was written."""

    def __init__(self, summary: ExportSummary) -> None:
        self.summary = summary
        verb = "is" if summary.skipped == 1 else "are"
        super().__init__(f"{plural(summary.skipped, 'conversation')} {verb} not valid "
                         f"fine-tuning examples; first: {summary.first_problem}; nothing was "
                         "written")


def export(store: EventStore, path: str, *, fmt: str, key_filter: dict[str, str],
           strict: bool = False, include_content: bool = False,
           endpoint: str | None = None) -> ExportSummary:
    """Write the sessions matching ``key_filter`` (all when empty) to ``path`` in ``fmt``.

    For ``otel``, ``include_content`` adds the messages to the spans and ``endpoint`` also
    posts the document to an OTLP/HTTP collector once the file is written.

    Raises:
        ChatledgerError: pyarrow is missing for Parquet, an unknown format, or the collector
            at ``endpoint`` refused the spans (the file is written).
        InvalidInputError: ``path`` is the SQLite database being read (or its ``-wal``,
            ``-shm`` or ``-journal`` file), by any name; nothing is written.
        NotFoundError: ``key_filter`` matches no session.
        ExportRejected: ``strict`` and some conversation is not a valid fine-tuning example.
        OSError: The file cannot be written.
    """
    if fmt not in FORMATS:
        raise ChatledgerError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    refuse_database(path, database_file(store))
    writer = _parquet_module() if fmt == "parquet" else None
    streams = _matching_streams(store, key_filter) if key_filter else None
    if fmt == "otel":
        with atomic_path(path) as tmp:
            summary = _write_otel(store, tmp, path, key_filter, include_content)
        if endpoint is not None:
            with open(path, "rb") as f:
                post_otlp(endpoint, f.read())
        return summary
    with atomic_path(path) as tmp:
        if fmt == "jsonl":
            return _write_jsonl(store, tmp, path, streams)
        if fmt == "openai":
            summary = _write_openai(store, tmp, path, key_filter)
            if strict and summary.skipped:
                raise ExportRejected(summary)
            return summary
        return _write_parquet(writer, store, tmp, path, streams)


def _parquet_module() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise ChatledgerError(
            f"Parquet export needs pyarrow ({e}); install it with: pip install 'chatledger[parquet]'"
        ) from e
    return pyarrow


def _pages(store: EventStore, key_filter: dict[str, str]) -> Iterator[SessionInfo]:
    after = None
    while True:
        page = store.sessions(limit=PAGE, after=after, **key_filter)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].cursor


def _matching_streams(store: EventStore, key_filter: dict[str, str]) -> set[str]:
    streams = {s.stream_id for s in _pages(store, key_filter)}
    if not streams:
        wanted = " ".join(f"{k}={v}" for k, v in sorted(key_filter.items()))
        raise NotFoundError(f"no session matches {wanted}; nothing was written")
    return streams


@functools.lru_cache(maxsize=4096)
def _key_parts(stream_id: str) -> dict[str, str]:
    return SessionKey.from_stream_id(stream_id).parts


def _rows(store: EventStore, streams: set[str] | None) -> Iterator[tuple[Record, int, Any]]:
    """(record, index, message) for every message in the log, in log order."""
    with progress(store.iter_all(), length=store.event_count(), label="exporting") as records:
        for rec in records:
            if streams is not None and rec.stream_id not in streams:
                continue
            match rec.event:
                case MessageAppended(message=message):
                    yield rec, 0, message
                case SessionForked(messages=messages) | CheckpointSaved(messages=messages):
                    for i, message in enumerate(messages):  # a checkpoint: what it added
                        yield rec, i, message
                case _:
                    pass


class _Line(msgspec.Struct):
    """One ``jsonl`` line; a Struct encodes faster than a dict and fixes the key order."""

    stream_id: str
    key: dict[str, str]
    version: int
    index: int
    position: int
    recorded_at: str
    message: Any


def _write_jsonl(store: EventStore, tmp: str, path: str, streams: set[str] | None) -> ExportSummary:
    count = 0
    moment, stamp = None, ""
    with open_output(tmp) as out:
        for rec, index, message in _rows(store, streams):
            if rec.recorded_at != moment:  # one append shares one time: format it once
                moment, stamp = rec.recorded_at, rec.recorded_at.isoformat()
            out.write(_encode(_Line(rec.stream_id, _key_parts(rec.stream_id), rec.version,
                                    index, rec.position, stamp, message)) + b"\n")
            count += 1
    return ExportSummary("jsonl", path, messages=count)


def _write_openai(store: EventStore, tmp: str, path: str,
                  key_filter: dict[str, str]) -> ExportSummary:
    written = messages = skipped = 0
    first: str | None = None
    # Counting costs a query, so only for a progress bar someone will see.
    total = int(store.stats().get("sessions", 0)) if sys.stderr.isatty() and not key_filter \
        else None
    with open_output(tmp) as out, progress(_pages(store, key_filter), length=total,
                                          label="exporting") as sessions:
        for info in sessions:
            _, history = store.load_history(info.key)
            try:
                example = finetune_example(history)
            except InvalidExample as e:
                skipped += 1
                if first is None:
                    first = f"{info.stream_id}: {e}"
                continue
            out.write(_encode(example) + b"\n")
            written += 1
            messages += len(example["messages"])
    return ExportSummary("openai", path, messages=messages, conversations=written,
                         skipped=skipped, first_problem=first)


def _write_parquet(pa: Any, store: EventStore, tmp: str, path: str,
                   streams: set[str] | None) -> ExportSummary:
    schema = pa.schema([
        ("stream_id", pa.string()), ("key", pa.string()), ("version", pa.int64()),
        ("index", pa.int32()), ("position", pa.int64()),
        ("recorded_at", pa.timestamp("us", tz="UTC")), ("type", pa.string()),
        ("text", pa.string()), ("message", pa.string()),
    ])
    count = 0
    batch: list[dict[str, Any]] = []
    with open_output(tmp) as out, pa.parquet.ParquetWriter(out, schema) as writer:
        for rec, index, message in _rows(store, streams):
            batch.append({"stream_id": rec.stream_id, "key": _encode(_key_parts(rec.stream_id)).decode(),
                          "version": rec.version, "index": index, "position": rec.position,
                          "recorded_at": rec.recorded_at, "type": message.type,
                          "text": message.text, "message": _encode(message).decode()})
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return ExportSummary("parquet", path, messages=count)


def _write_otel(store: EventStore, tmp: str, path: str, key_filter: dict[str, str],
                include_content: bool) -> ExportSummary:
    spans: list[dict[str, Any]] = []
    sessions = turns = 0
    for info in _pages(store, key_filter):
        sessions += 1
        for span in turn_spans(store, info.key, include_content=include_content):
            turns += span["kind"] == 1
            spans.append(span)
    if key_filter and not sessions:
        _matching_streams(store, key_filter)  # raises the export's usual NotFoundError
    with open_output(tmp) as out:
        out.write(_encode(otel_request(spans)))
    return ExportSummary("otel", path, conversations=sessions, messages=turns, spans=len(spans))
