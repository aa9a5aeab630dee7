"""Recorded turns as OpenTelemetry GenAI spans, in OTLP/JSON (``resourceSpans``).

Each recorded run is one trace: a span for the turn and, under it, one ``chat {model}`` span per
model call, with the GenAI semantic conventions' attributes (``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.*``, ``gen_ai.response.*``, ``gen_ai.usage.*``,
``gen_ai.conversation.id`` = the session's ``stream_id``). Message content
(``gen_ai.input.messages``, ``gen_ai.output.messages``) is included only when asked for.

Trace and span ids are hashes of the session and the log positions of the run and call events,
so exporting the same log twice gives the same ids, and a backend that receives both keeps one
copy. Times come from the log: the run's ``recorded_at`` ends the turn span, which starts
``latency_ms`` earlier; each call starts at its ``offset_ms`` into the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx

from chatledger.eventstore import (
    AIMessage,
    ChatledgerError,
    ChatMessage,
    EventStore,
    Message,
    ModelCalled,
    Record,
    RunRecorded,
    SessionKey,
    ToolMessage,
)
from chatledger.projections import RecordedTurn, recorded_turns, resolve_call

__all__ = ["otel_request", "post_otlp", "turn_spans"]

SCOPE = {"name": "chatledger", "version": "0.1.0"}
_INTERNAL, _CLIENT = 1, 3
_ERROR = 2
_ROLES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "system": "system",
          "tool": "tool", "function": "tool"}
# Recorded request parameters with a GenAI attribute of their own.
_PARAMETERS = {"temperature": "gen_ai.request.temperature",
               "max_tokens": "gen_ai.request.max_tokens", "top_p": "gen_ai.request.top_p",
               "frequency_penalty": "gen_ai.request.frequency_penalty",
               "presence_penalty": "gen_ai.request.presence_penalty",
               "seed": "gen_ai.request.seed", "stop": "gen_ai.request.stop_sequences"}


def _id(size: int, *parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:size * 2]


def _nanos(moment: datetime) -> str:
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float))
                                                for v in value):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": json.dumps(value, ensure_ascii=False, sort_keys=True)}


def _attributes(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in pairs.items() if v is not None]


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if isinstance(message, ToolMessage):
        return [{"type": "tool_call_response", "id": message.tool_call_id,
                 "response": message.text}]
    if message.text:
        parts.append({"type": "text", "content": message.text})
    if isinstance(message, AIMessage):
        parts.extend({"type": "tool_call", "id": c.get("id"), "name": c["name"],
                      "arguments": c.get("args", {})} for c in message.tool_calls)
    return parts


def _content(messages: Iterable[Message], finish: str | None = None) -> str:
    out = []
    for m in messages:
        role = m.role if isinstance(m, ChatMessage) else _ROLES.get(m.type, m.type)
        item: dict[str, Any] = {"role": role, "parts": _parts(m)}
        if finish is not None:
            item["finish_reason"] = finish
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def _call_span(call: ModelCalled, record: Record, trace: str, parent: str, start: datetime,
               turn: RecordedTurn, history: list[Message], stream_id: str,
               include_content: bool) -> dict[str, Any]:
    request, response, _ = resolve_call(call, history, turn)
    begin = start + timedelta(milliseconds=call.offset_ms)
    end = begin + timedelta(milliseconds=call.latency_ms)
    usage = call.usage or {}
    response_model = (response.response_metadata.get("model_name")
                      if response is not None else None)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.model, "gen_ai.conversation.id": stream_id,
        "gen_ai.response.id": call.response_id, "gen_ai.response.model": response_model,
        "gen_ai.response.finish_reasons": [call.finish_reason] if call.finish_reason else None,
        "gen_ai.usage.input_tokens": usage.get("input_tokens"),
        "gen_ai.usage.output_tokens": usage.get("output_tokens"),
    }
    for name, value in call.parameters.items():
        attributes[_PARAMETERS.get(name, f"gen_ai.request.{name}")] = value
    if call.error is not None:
        attributes["error.type"] = call.error.partition(":")[0]
    if include_content:
        attributes["gen_ai.input.messages"] = _content(request)
        if response is not None:
            attributes["gen_ai.output.messages"] = _content([response], call.finish_reason or "")
    span: dict[str, Any] = {
        "traceId": trace, "spanId": _id(8, stream_id, "call", record.position),
        "parentSpanId": parent, "name": f"chat {call.model}", "kind": _CLIENT,
        "startTimeUnixNano": _nanos(begin), "endTimeUnixNano": _nanos(end),
        "attributes": _attributes(attributes)}
    if call.error is not None:
        span["status"] = {"code": _ERROR, "message": call.error}
    return span


def turn_spans(store: EventStore, key: SessionKey, *,
               include_content: bool = False) -> Iterator[dict[str, Any]]:
    """The spans of every recorded turn of one session: each turn's span, then its calls'."""
    records = list(store.read(key))
    by_version = {r.version: r for r in records}
    # The records of each run's calls, found as recorded_turns finds them: after the run.
    latest: dict[str, int] = {}
    call_records: dict[int, list[Record]] = {}
    for r in records:
        if isinstance(r.event, RunRecorded):
            latest[r.event.run_id] = r.version
        elif isinstance(r.event, ModelCalled) and r.event.run_id in latest:
            call_records.setdefault(latest[r.event.run_id], []).append(r)
    stream_id = key.stream_id
    for number, turn in enumerate(recorded_turns(records), start=1):
        run = turn.run
        record = by_version[turn.version]
        trace = _id(16, stream_id, "trace", record.position)
        span_id = _id(8, stream_id, "turn", record.position)
        start = record.recorded_at - timedelta(milliseconds=run.latency_ms)
        attributes = {"gen_ai.conversation.id": stream_id, "chatledger.run_id": run.run_id,
                      "chatledger.turn": number, "chatledger.status": run.status,
                      "chatledger.version": turn.version,
                      "chatledger.history_version": run.history_version,
                      "chatledger.position": record.position}
        span: dict[str, Any] = {
            "traceId": trace, "spanId": span_id, "name": f"turn {run.model or 'chain'}",
            "kind": _INTERNAL, "startTimeUnixNano": _nanos(start),
            "endTimeUnixNano": _nanos(record.recorded_at),
            "attributes": _attributes(attributes)}
        if run.status != "ok":
            span["status"] = {"code": _ERROR, "message": run.error or run.status}
        yield span
        if not turn.calls:
            continue
        _, history = store.load_history_at(key, version=run.history_version)
        for call, call_record in zip(turn.calls, call_records[turn.version], strict=True):
            yield _call_span(call, call_record, trace, span_id, start, turn, history, stream_id,
                             include_content)


def otel_request(spans: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON ``ExportTraceServiceRequest`` holding ``spans``."""
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes({"service.name": "chatledger"})},
        "scopeSpans": [{"scope": SCOPE, "spans": list(spans)}],
    }]}


def post_otlp(endpoint: str, body: bytes, *, timeout: float = 30.0) -> None:
    """POST an OTLP/JSON body to a collector (``/v1/traces`` is added to a bare host URL).

    Raises:
        ChatledgerError: The collector is unreachable or refused the spans.
    """
    url = httpx.URL(endpoint)
    if url.path in ("", "/"):
        url = url.copy_with(path="/v1/traces")
    try:
        response = httpx.post(url, content=body, timeout=timeout,
                              headers={"Content-Type": "application/json"})
    except httpx.HTTPError as e:
        raise ChatledgerError(f"cannot send spans to {url}: {type(e).__name__}: {e}") from e
    if response.status_code >= 300:
        raise ChatledgerError(f"the collector at {url} refused the spans: HTTP "
                              f"{response.status_code} {response.text[:200]}")
