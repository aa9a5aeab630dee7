"""export --format otel: OTLP/JSON GenAI spans, valid against the OpenTelemetry protos."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatledger.eventstore import open_store
from chatledger.projections import ChatHistory
from chatledger.runtime import (
    ChatPromptTemplate,
    MessagesPlaceholder,
    RunnableWithMessageHistory,
)
from chatledger.runtime.models import FakeChatModel, OpenAIChatModel
from tests.runtime.openai_server import Reply, completion, running
from tests.tools.cli_support import assert_one_line_error, run


def _parse(text: str) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON with the official protos (ids are hex in OTLP/JSON, base64 in proto JSON)."""
    doc = json.loads(text)
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in span:
                        span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    return json_format.Parse(json.dumps(doc), ExportTraceServiceRequest())


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        out[kv.key] = value
    return out


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A ledger with a two-turn prompt-chain session on a loopback OpenAI server, and a failed turn."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Speak {language}."), MessagesPlaceholder(variable_name="history"),
        ("human", "{input}")])
    with running() as server:
        server.script(Reply(body=completion("Ciao!", id="chatcmpl-a", model="m-1")),
                      Reply(body=completion("Bob.", id="chatcmpl-b", model="m-1")))
        model = OpenAIChatModel("m", base_url=server.base_url, temperature=0.5, max_tokens=20)
        chain = RunnableWithMessageHistory(
            prompt | model, lambda session_id: ChatHistory(session_id, url),
            input_messages_key="input", history_messages_key="history")
        for text in ("hi im bob", "my name?"):
            chain.invoke({"language": "italian", "input": text}, {"session_id": "2"})
    failing = RunnableWithMessageHistory(FakeChatModel([ValueError("nope")]),
                                         lambda session_id: ChatHistory(session_id, url))
    with pytest.raises(ValueError):
        failing.invoke("x", {"session_id": "bad"})
    return url


def test_otel_export_is_valid_otlp_with_genai_attributes(db: str, tmp_path: Path) -> None:
    """One span per turn, one chat span per call under it, with the GenAI attributes."""
    out = tmp_path / "spans.json"
    result = run(["--db", db, "export", "--format", "otel", "--out", str(out), "session_id=2"])
    assert result.exit_code == 0, result.output
    request = _parse(out.read_text())
    spans = list(request.resource_spans[0].scope_spans[0].spans)
    assert [s.name for s in spans] == ["turn m", "chat m", "turn m", "chat m"]
    turn, call = spans[0], spans[1]
    assert call.parent_span_id == turn.span_id and call.trace_id == turn.trace_id
    assert len(call.trace_id) == 16 and len(call.span_id) == 8
    assert spans[2].trace_id != turn.trace_id
    attrs = _attrs(call)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "m"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.response.id"] == "chatcmpl-a"
    assert attrs["gen_ai.response.model"] == "m-1"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.input_tokens"] == 9 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.conversation.id"] == "session_id=2"
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert call.start_time_unix_nano >= turn.start_time_unix_nano
    assert call.end_time_unix_nano <= turn.end_time_unix_nano + 1000


def test_content_only_when_asked_for(db: str, tmp_path: Path) -> None:
    """--include-content adds the exact request and the reply as GenAI message JSON."""
    out = tmp_path / "spans.json"
    run(["--db", db, "export", "--format", "otel", "--out", str(out), "--include-content",
         "session_id=2"])
    spans = list(_parse(out.read_text()).resource_spans[0].scope_spans[0].spans)
    attrs = _attrs(spans[3])
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Speak italian."}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi im bob"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Ciao!"}]},
        {"role": "user", "parts": [{"type": "text", "content": "my name?"}]}]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Bob."}],
         "finish_reason": "stop"}]


def test_ids_are_the_same_on_every_export_and_errors_are_marked(db: str, tmp_path: Path) -> None:
    """Exporting twice gives identical ids; a failed turn and call carry an error status."""
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        assert run(["--db", db, "export", "--format", "otel", "--out", str(path)]).exit_code == 0
    assert first.read_text() == second.read_text()
    spans = list(_parse(first.read_text()).resource_spans[0].scope_spans[0].spans)
    failed = [s for s in spans if s.status.code == 2]
    assert [s.name for s in failed] == ["turn fake", "chat fake"]
    assert _attrs(failed[1])["error.type"] == "ValueError"


class _Receiver(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    """A loopback OTLP/HTTP receiver that records what it gets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_endpoint_posts_the_spans_to_a_collector(db: str, tmp_path: Path,
                                                 receiver: ThreadingHTTPServer) -> None:
    """--endpoint POSTs the same OTLP/JSON to /v1/traces of the collector."""
    out = tmp_path / "spans.json"
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    result = run(["--db", db, "export", "--format", "otel", "--out", str(out),
                  "--endpoint", endpoint])
    assert result.exit_code == 0, result.output
    [(path, content_type, body)] = receiver.received  # type: ignore[attr-defined]
    assert (path, content_type) == ("/v1/traces", "application/json")
    assert body == out.read_bytes()
    with open_store(db) as store:
        assert store.verify().ok


def test_unreachable_endpoint_is_one_error_line(db: str, tmp_path: Path) -> None:
    """A collector that cannot be reached is one clear line and a non-zero exit."""
    from tests.runtime.openai_server import closed_port

    result = run(["--db", db, "export", "--format", "otel", "--out", str(tmp_path / "x.json"),
                  "--endpoint", f"http://127.0.0.1:{closed_port()}/v1/traces"])
    assert_one_line_error(result, "cannot send spans")
