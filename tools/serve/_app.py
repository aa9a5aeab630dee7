"""The web view: a Starlette app of server-rendered pages over a store it only reads.

The app holds the store as a ``LedgerReader``, a protocol of read methods only, so no page can
call a write method (mypy checks it). Every page reads a bounded slice: the catalog page by
page, a session's events by version window, its history by offset, its log by version window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.datastructures import Headers, UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatledger.eventstore import (
    ChatledgerError,
    InvalidInputError,
    InvalidKeyError,
    ModelCalled,
    NotFoundError,
    Problem,
    Record,
    SessionInfo,
    SessionKey,
    VerifyReport,
)
from chatledger.eventstore import Message as ChatMessage
from chatledger.projections import recorded_turns, resolve_call
from chatledger.tools._keys import parse_parts
from chatledger.tools._parse import parse_number, parse_time
from chatledger.tools.serve._forks import ForkIndex
from chatledger.tools.serve._heads import MAX_HEAD_BYTES, check_against_head, heads_supported
from chatledger.tools.serve._stored import read_shown
from chatledger.tools.serve._views import Resolver, chat_items, message_view, pretty_json

__all__ = ["CHAT_PAGE", "HISTORY_PAGE", "LOG_PAGE", "SESSIONS_PAGE", "LedgerReader", "create_app"]

SESSIONS_PAGE = 50
CHAT_PAGE = 100
HISTORY_PAGE = 100
LOG_PAGE = 100

_STATIC = {"style.css": "text/css; charset=utf-8", "slider.js": "text/javascript; charset=utf-8"}

# Scripts, styles and images come from this server only: a message that smuggled markup past
# the escaping could still neither run script nor load anything from elsewhere.
_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

# Characters that change how the text around them is laid out or hide themselves (bidi
# overrides and isolates, zero-width characters, C0/C1 controls other than tab and newline):
# shown as visible code points, so what you read is what is stored.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f"
                        "\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


class LedgerReader(Protocol):
    """The store methods the pages use: reads only."""

    def read(self, key: SessionKey, *, after_version: int = 0,
             until_version: int | None = None) -> list[Record]: ...

    def session(self, key: SessionKey) -> SessionInfo | None: ...

    def sessions(self, *, limit: int = 100, after: str | None = None,
                 **key_filter: str) -> list[SessionInfo]: ...

    def load_history_at(self, key: SessionKey, *, version: int | None = None,
                        time: datetime | None = None) -> tuple[int, list[ChatMessage]]: ...

    def verify(self, key: SessionKey | None = None) -> VerifyReport: ...


def show(value: object) -> Markup:
    """Escape text for HTML and make invisible and direction-changing characters visible."""
    escaped = str(escape("" if value is None else str(value)))
    return Markup(_INVISIBLE.sub(
        lambda m: f'<span class="ctl" title="U+{ord(m.group()):04X}">'
                  f'\u27e8U+{ord(m.group()):04X}\u27e9</span>', escaped))


def visible(value: object) -> str:
    """Plain text with invisible and direction-changing characters spelled out (for titles)."""
    return _INVISIBLE.sub(lambda m: f"\u27e8U+{ord(m.group()):04X}\u27e9",
                          "" if value is None else str(value))


def url(path: str, **params: object) -> str:
    """``path`` with the given query parameters (None values left out)."""
    query = urlencode([(k, str(v)) for k, v in params.items() if v is not None])
    return f"{path}?{query}" if query else path


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _event_json(rec: Record) -> str:
    return pretty_json({"event_id": rec.event_id, "event": rec.event, "meta": rec.meta,
                        "digest": rec.digest, "chain": rec.chain})


def _templates() -> Jinja2Templates:
    env = Environment(loader=PackageLoader("chatledger.tools.serve", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(show=show, visible=visible, time=_time)
    env.globals.update(url=url, event_json=_event_json)
    return Jinja2Templates(env=env)


def _int(request: Request, name: str, default: int | None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    return parse_number(text, name)


def _key(request: Request) -> SessionKey:
    sid = request.query_params.get("sid")
    if not sid:
        raise InvalidInputError("no session given: open a session from the list")
    return SessionKey.from_stream_id(sid)


def _moment(text: str) -> datetime:
    # The picker says UTC; a time that names its own zone keeps it.
    return parse_time(text, "time", zone=UTC)


# A Host header: a bracketed IPv6 address or a name, then an optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[^:\[\]]*)(?::[0-9]*)?\Z")


class _HostCheck:
    """Answers only requests whose Host header names one of ``allowed_hosts`` (any port):
    others get 400, so a page elsewhere cannot reach the server through DNS rebinding."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            match = _HOST.match(Headers(scope=scope).get("host", ""))
            if match is None or match.group(1).lower() not in self.allowed:
                response = PlainTextResponse("Invalid host header", status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _SecurityHeaders:
    """Adds the content security policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Pages:
    """The page handlers, bound to one store."""

    def __init__(self, store: LedgerReader) -> None:
        self.store = store
        self.forks = ForkIndex(store)
        self.templates = _templates()
        files = resources.files("chatledger.tools.serve") / "static"
        self.static = {name: (files / name).read_bytes() for name in _STATIC}

    def render(self, request: Request, name: str, status: int = 200,
               **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def _session(self, key: SessionKey) -> SessionInfo:
        info = self.store.session(key)
        if info is None:
            raise NotFoundError(f"no session {key.stream_id!r}")
        return info

    def sessions(self, request: Request) -> Response:
        text = request.query_params.get("filter", "").strip()
        key_filter = parse_parts(text.split()) if text else {}
        after = request.query_params.get("after") or None
        rows = self.store.sessions(limit=SESSIONS_PAGE + 1, after=after, **key_filter)
        page = rows[:SESSIONS_PAGE]
        more = page[-1].cursor if len(rows) > SESSIONS_PAGE else None
        return self.render(request, "sessions.html", sessions=page, filter=text, after=after,
                           next_cursor=more)

    def session(self, request: Request) -> Response:
        key = _key(request)
        info = self._session(key)
        head = info.version
        view = request.query_params.get("view", "chat")
        if view not in ("chat", "history"):
            raise InvalidInputError(f"view must be 'chat' or 'history', got {view!r}")
        time_text = request.query_params.get("time", "").strip()
        moment = _moment(time_text) if time_text else None
        if moment is not None:
            version, history = self.store.load_history_at(key, time=moment)
        else:
            wanted = _int(request, "version", head) or 0
            if wanted > head:
                raise NotFoundError(f"session {key.stream_id!r} is at version {head}; "
                                    f"version {wanted} does not exist")
            version, history = self.store.load_history_at(key, version=wanted)
        context: dict[str, Any] = dict(
            key=key, info=info, head=head, version=version, view=view, time_text=time_text,
            moment=moment, history_count=len(history), tree=self.forks.tree(key))
        if view == "chat":
            until = min(_int(request, "until", version) or 0, version)
            start = max(0, until - CHAT_PAGE)
            records = read_shown(self.store, key, after_version=start, until_version=until)
            context.update(items=chat_items(records, self._resolver(key, records)),
                           start=start, until=until,
                           earlier=start if start > 0 else None,
                           later=min(until + CHAT_PAGE, version) if until < version else None)
        else:
            last = max(0, len(history) - HISTORY_PAGE)
            offset = min(_int(request, "offset", last) or 0, last)
            context.update(
                messages=[message_view(m) for m in history[offset:offset + HISTORY_PAGE]],
                offset=offset, earlier=max(0, offset - HISTORY_PAGE) if offset > 0 else None,
                later=min(offset + HISTORY_PAGE, last) if offset < last else None)
        return self.render(request, "session.html", **context)

    def _resolver(self, key: SessionKey, records: Sequence[Record]) -> Resolver:
        """Resolves the model calls of a page: the turn's messages from the page, the history
        the run read from the store (once per history version)."""
        turns = {t.run.run_id: t for t in recorded_turns(records)}
        histories: dict[int, list[ChatMessage]] = {}

        def resolve(call: Any) -> tuple[list[ChatMessage], ChatMessage | None] | None:
            turn = turns.get(getattr(call, "run_id", ""))
            if not isinstance(call, ModelCalled) or turn is None:
                return None
            at = turn.run.history_version
            if at not in histories:
                histories[at] = self.store.load_history_at(key, version=at)[1]
            request, response, _ = resolve_call(call, histories[at], turn)
            return request, response
        return resolve

    def log(self, request: Request) -> Response:
        key = _key(request)
        info = self._session(key)
        after = min(_int(request, "after", 0) or 0, info.version)
        records = read_shown(self.store, key, after_version=after,
                             until_version=after + LOG_PAGE)
        report = self.store.verify(key)
        by_version: dict[int, list[Problem]] = {}
        for problem in report.problems:
            by_version.setdefault(problem.version, []).append(problem)
        return self.render(
            request, "log.html", key=key, info=info, records=records, report=report,
            by_version=by_version, after=after, page=LOG_PAGE,
            earlier=max(0, after - LOG_PAGE) if after > 0 else None,
            later=after + LOG_PAGE if after + LOG_PAGE < info.version else None)

    def verify(self, request: Request) -> Response:
        report = self.store.verify() if request.query_params.get("all") else None
        return self.render(request, "verify.html", report=report, head_report=None,
                           supported=heads_supported(self.store), max_bytes=MAX_HEAD_BYTES)

    async def verify_head(self, request: Request) -> Response:
        supported = heads_supported(self.store)
        if not supported:
            return self.render(request, "verify.html", status=501, report=None,
                               head_report=None, supported=False, max_bytes=MAX_HEAD_BYTES)
        async with request.form(max_files=1, max_fields=4,
                                max_part_size=MAX_HEAD_BYTES + 1) as form:
            upload = form.get("head")
            if not isinstance(upload, UploadFile):
                raise InvalidInputError("choose a head file to upload")
            data = await upload.read(MAX_HEAD_BYTES + 1)
        head_report = check_against_head(self.store, data)
        return self.render(request, "verify.html", report=None, head_report=head_report,
                           supported=True, max_bytes=MAX_HEAD_BYTES)

    def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(self.static[name], media_type=_STATIC[name])

    def error(self, request: Request, exc: Exception) -> Response:
        status = (404 if isinstance(exc, NotFoundError)
                  else 400 if isinstance(exc, (InvalidInputError, InvalidKeyError)) else 503)
        return self.render(request, "error.html", status=status, message=str(exc))


def create_app(store: LedgerReader, *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The web view over ``store``, which it only reads.

    Args:
        store: An open store (any ``EventStore``); the app never calls a write method on it.
        allowed_hosts: Host names the app answers to, on any port (e.g. ``["127.0.0.1",
            "localhost"]``, or ``["[::1]", "localhost"]`` with IPv6 addresses bracketed,
            which keeps a web page elsewhere from reaching a local server through DNS
            rebinding); None answers every host.
    """
    pages = _Pages(store)
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(_HostCheck, allowed_hosts=list(allowed_hosts)))

    async def on_error(request: Request, exc: Exception) -> Response:
        return pages.error(request, exc)

    return Starlette(
        routes=[
            Route("/", pages.sessions),
            Route("/session", pages.session),
            Route("/log", pages.log),
            Route("/verify", pages.verify, methods=["GET"]),
            Route("/verify", pages.verify_head, methods=["POST"]),
            Route("/static/{name}", pages.static_file),
        ],
        middleware=middleware,
        exception_handlers={ChatledgerError: on_error},
    )

