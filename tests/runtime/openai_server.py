"""A scripted OpenAI Chat Completions server on 127.0.0.1, for tests.

It speaks real HTTP/1.1 from a thread (stdlib ``http.server``): each POST takes the next
scripted reply, so a test can line up a 503, then a 429, then a completion, and count how many
requests arrived. Replies cover the protocol's happy paths (JSON completion, SSE stream with
``data: [DONE]``) and its failures (error statuses, a slow server, malformed JSON, a stream
cut off mid-way or stalled).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    ``kind`` is ``"json"`` (``body`` with ``status``), ``"raw"`` (``body`` bytes as is),
    ``"sse"`` (``events`` as ``data:`` lines, chunked), ``"cut"`` (SSE that drops the connection
    mid-chunk after ``events``), ``"stall"`` (SSE that sends ``events`` then waits ``delay``
    seconds) or ``"eof"`` (SSE that ends cleanly after ``events`` with no ``[DONE]``).
    ``delay`` before answering makes a slow server.
    """

    kind: str = "json"
    status: int = 200
    body: Any = None
    events: Sequence[Any] = ()
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stall: float = 5.0


@dataclass
class Request:
    """What the server received."""

    path: str
    headers: dict[str, str]
    body: Any
    client_port: int


def completion(
    content: str | None = "Hello!",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    id: str = "chatcmpl-1",
    model: str = "test-model",
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A non-streamed Chat Completions reply body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": id, "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage if usage is not None else
        {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    id: str = "chatcmpl-s1",
    model: str = "test-model",
    choices: bool = True,
) -> dict[str, Any]:
    """One streamed ``chat.completion.chunk`` event."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": 1,
                            "model": model, "usage": usage}
    body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}] \
        if choices else []
    return body


def text_stream(pieces: Iterable[str], *, usage: dict[str, Any] | None = None) -> list[Any]:
    """Events of a streamed text reply: role, the pieces, finish, usage chunk, ``[DONE]``."""
    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk(finish_reason="stop"))
    if usage is not None:
        events.append(chunk(usage=usage, choices=False))
    events.append("[DONE]")
    return events


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        """Record the request, then play the next scripted reply."""
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(
                Request(self.path, dict(self.headers.items()), body, self.client_address[1])
            )
            reply = owner.replies.popleft() if owner.replies else owner.default
        if reply is None:
            reply = Reply(status=500, body={"error": {"message": "no scripted reply left"}})
        try:
            self._play(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _play(self, reply: Reply) -> None:
        if reply.delay and owner_stopping(self).wait(reply.delay):
            return
        if reply.kind in ("json", "raw"):
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in reply.events:
            text = event if isinstance(event, str) else json.dumps(event)
            self._chunk(f"data: {text}\n\n".encode())
        if reply.kind == "cut":
            self.wfile.write(b"40\r\ndata: {\"id\": \"chatcmpl-s1\", \"cho")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.kind == "stall":
            owner_stopping(self).wait(reply.stall)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def owner_stopping(handler: _Handler) -> threading.Event:
    """The event set when the server shuts down, so slow replies end at once."""
    return handler.server.owner.stopping


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: OpenAIServer


class OpenAIServer:
    """The scripted server. ``base_url`` ends in ``/v1`` like a real one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replies: deque[Reply] = deque()
        self.default: Reply | None = None
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._http = _Server(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def script(self, *replies: Reply, default: Reply | None = None) -> None:
        """Queue replies for the next requests; ``default`` answers once they run out."""
        with self.lock:
            self.replies.extend(replies)
            self.default = default

    @property
    def count(self) -> int:
        """How many requests arrived."""
        with self.lock:
            return len(self.requests)

    def start(self) -> OpenAIServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end any slow reply."""
        self.stopping.set()
        self._http.shutdown()
        self._http.server_close()


@contextmanager
def running() -> Iterator[OpenAIServer]:
    """A started server, stopped afterwards."""
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
