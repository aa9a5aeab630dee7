"""OpenAIChatModel failures against a real local server: errors, retries, and a key kept secret."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from chatledger.eventstore import AIMessageChunk, ChatledgerError
from chatledger.runtime.models import OpenAIChatModel
from chatledger.runtime.models._errors import (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
)
from tests.runtime.openai_server import (
    OpenAIServer,
    Reply,
    chunk,
    closed_port,
    completion,
    running,
    text_stream,
)

KEY = "sk-live-SECRET-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    """A scripted Chat Completions server on 127.0.0.1."""
    with running() as s:
        yield s


def _model(server: OpenAIServer, **options: object) -> OpenAIChatModel:
    return OpenAIChatModel("test-model", base_url=server.base_url, api_key=KEY, **options)  # type: ignore[arg-type]


def _status(status: int, message: str = "nope", *, retry_after: str | None = "0") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=status, body={"error": {"message": message}}, headers=headers)


def _text(error: BaseException) -> str:
    """Everything a traceback of the error would print, causes included."""
    return "".join(traceback.format_exception(error)) + repr(error)


def test_connection_refused_is_a_connection_error() -> None:
    """A closed port raises ModelConnectionError naming the server, after the retries."""
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    model = OpenAIChatModel("m", base_url=base_url, api_key=KEY, max_retries=1)
    with pytest.raises(ModelConnectionError) as info:
        model.invoke("hi")
    error = info.value
    assert isinstance(error, ModelError) and isinstance(error, ChatledgerError)
    assert isinstance(error, ConnectionError)
    assert base_url in str(error) and "gave up after 2 attempts" in str(error)
    assert error.base_url == base_url
    assert KEY not in _text(error)


def test_timeout_is_raised_and_not_retried(server: OpenAIServer) -> None:
    """A server slower than the timeout raises ModelTimeoutError after a single request."""
    server.script(Reply(body=completion(), delay=5.0))
    with pytest.raises(ModelTimeoutError) as info:
        _model(server, timeout=0.3).invoke("hi")
    assert isinstance(info.value, TimeoutError)
    assert server.base_url in str(info.value) and "0.3s" in str(info.value)
    assert server.count == 1


@pytest.mark.parametrize("status, cls", [
    (401, ModelAuthenticationError),
    (403, ModelAuthenticationError),
    (404, ModelNotFoundError),
    (400, ModelHTTPError),
    (422, ModelHTTPError),
])
def test_client_errors_are_not_retried(server: OpenAIServer, status: int,
                                       cls: type[ModelHTTPError]) -> None:
    """4xx other than 429 raise at once, as the subclass for the status, naming server and status."""
    server.script(_status(status, "the server says no"), default=Reply(body=completion()))
    with pytest.raises(cls) as info:
        _model(server).invoke("hi")
    error = info.value
    assert type(error) is cls and error.status == status
    assert server.base_url in str(error) and f"HTTP {status}" in str(error)
    assert "the server says no" in str(error) and error.body == "the server says no"
    assert server.count == 1


def test_redirect_is_an_error_naming_the_new_address(server: OpenAIServer) -> None:
    """A 3xx is not followed (it would drop the POST body) but named in a ModelHTTPError."""
    server.script(Reply(status=308, body=b"", headers={"Location": "https://new.example/v1"}))
    with pytest.raises(ModelHTTPError, match=r"HTTP 308.*https://new.example/v1") as info:
        _model(server).invoke("hi")
    assert info.value.status == 308 and server.count == 1


def test_not_found_hints_at_the_base_url(server: OpenAIServer) -> None:
    """A 404 message tells the user to check base_url and the model name."""
    server.script(Reply(status=404, body=b"404 page not found"))
    with pytest.raises(ModelNotFoundError, match=r"ends in /v1.*this model"):
        _model(server).invoke("hi")


def test_missing_key_is_named_in_a_401(server: OpenAIServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 without any API key says how to give one."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.script(_status(401, "missing key"))
    with pytest.raises(ModelAuthenticationError, match="OPENAI_API_KEY"):
        OpenAIChatModel("m", base_url=server.base_url).invoke("hi")


def test_rate_limit_is_retried_until_success(server: OpenAIServer) -> None:
    """429s are retried (honouring Retry-After) and the call succeeds on the third request."""
    server.script(_status(429), _status(429), Reply(body=completion("finally")))
    assert _model(server).invoke("hi").content == "finally"
    assert server.count == 3


def test_server_errors_give_up_after_max_retries(server: OpenAIServer) -> None:
    """5xx is retried max_retries times, then ModelServerError says how many attempts it made."""
    server.script(default=_status(503, "overloaded"))
    with pytest.raises(ModelServerError) as info:
        _model(server, max_retries=2).invoke("hi")
    assert info.value.status == 503 and "overloaded" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert server.count == 3


def test_rate_limit_gives_up_as_rate_limit_error(server: OpenAIServer) -> None:
    """Persistent 429s end as ModelRateLimitError; max_retries=0 makes exactly one request."""
    server.script(default=_status(429))
    with pytest.raises(ModelRateLimitError):
        _model(server, max_retries=0).invoke("hi")
    assert server.count == 1


def test_server_error_without_retry_after_backs_off(server: OpenAIServer) -> None:
    """A 500 without Retry-After is retried after the default backoff, then succeeds."""
    server.script(_status(500, retry_after=None), Reply(body=completion("ok")))
    assert _model(server).invoke("hi").content == "ok"
    assert server.count == 2


def test_malformed_json_is_a_response_error(server: OpenAIServer) -> None:
    """A 200 reply that is not JSON raises ModelResponseError and is not retried."""
    server.script(Reply(kind="raw", body=b'{"id": "x", "choices": [tru'))
    with pytest.raises(ModelResponseError, match="not valid JSON") as info:
        _model(server).invoke("hi")
    assert server.base_url in str(info.value) and "200" in str(info.value)
    assert server.count == 1


def test_reply_without_choices_is_a_response_error(server: OpenAIServer) -> None:
    """Valid JSON that is not a completion raises ModelResponseError showing what came back."""
    server.script(Reply(body={"object": "list", "data": []}),
                  Reply(body={"error": {"message": "context too long"}}))
    with pytest.raises(ModelResponseError, match="no choices"):
        _model(server).invoke("hi")
    with pytest.raises(ModelResponseError, match="context too long"):
        _model(server).invoke("hi")


def test_stream_cut_mid_way_keeps_earlier_chunks(server: OpenAIServer) -> None:
    """A dropped connection mid-stream raises ModelResponseError after the chunks that arrived."""
    events = text_stream(["Hel", "lo"])[:3]
    server.script(Reply(kind="cut", events=events))
    received: list[AIMessageChunk] = []
    with pytest.raises(ModelResponseError, match="cut off mid-way") as info:
        for piece in _model(server).stream("hi"):
            received.append(piece)
    assert "".join(str(c.content) for c in received) == "Hello"
    assert server.base_url in str(info.value)
    assert server.count == 1


def test_stream_ending_without_finish_is_cut(server: OpenAIServer) -> None:
    """A stream that closes cleanly before finish_reason and [DONE] is still incomplete."""
    server.script(Reply(kind="eof", events=text_stream(["Hel"])[:2]))
    with pytest.raises(ModelResponseError, match="before the reply was complete"):
        list(_model(server).stream("hi"))


def test_stream_stall_is_a_timeout(server: OpenAIServer) -> None:
    """A stream that stops sending for longer than the timeout raises ModelTimeoutError."""
    server.script(Reply(kind="stall", events=text_stream(["a"])[:2]))
    with pytest.raises(ModelTimeoutError, match="stalled"):
        list(_model(server, timeout=0.3).stream("hi"))


def test_malformed_stream_event_is_a_response_error(server: OpenAIServer) -> None:
    """A data line that is not JSON raises ModelResponseError quoting it."""
    server.script(Reply(kind="sse", events=[chunk({"content": "a"}), "{broken", "[DONE]"]))
    with pytest.raises(ModelResponseError, match="broken"):
        list(_model(server).stream("hi"))


def test_error_event_in_stream_is_a_response_error(server: OpenAIServer) -> None:
    """An error object sent mid-stream raises ModelResponseError with the server's message."""
    server.script(Reply(kind="sse", events=[{"error": {"message": "engine died"}}, "[DONE]"]))
    with pytest.raises(ModelResponseError, match="engine died"):
        list(_model(server).stream("hi"))


def test_stream_is_retried_before_its_first_byte(server: OpenAIServer) -> None:
    """A 503 on a streaming request is retried; the retry streams normally."""
    server.script(_status(503), Reply(kind="sse", events=text_stream(["ok"])))
    assert "".join(str(c.content) for c in _model(server).stream("hi")) == "ok"
    assert server.count == 2


def test_async_errors_match_the_sync_ones(server: OpenAIServer) -> None:
    """ainvoke and astream raise the same error classes, with the same retries."""
    server.script(_status(401), _status(503), _status(503),
                  Reply(kind="cut", events=text_stream(["x"])[:2]))
    model = _model(server, max_retries=1)
    refused = OpenAIChatModel("m", base_url=f"http://127.0.0.1:{closed_port()}/v1",
                              max_retries=0)

    async def main() -> list[type[BaseException]]:
        kinds: list[type[BaseException]] = []
        for call in (lambda: model.ainvoke("a"), lambda: model.ainvoke("b"),
                     lambda: _drain(model), lambda: refused.ainvoke("c")):
            try:
                await call()
            except ModelError as e:
                kinds.append(type(e))
        await model.aclose()
        return kinds

    assert asyncio.run(main()) == [ModelAuthenticationError, ModelServerError,
                                   ModelResponseError, ModelConnectionError]
    assert server.count == 4


async def _drain(model: OpenAIChatModel) -> None:
    async for _ in model.astream("hi"):
        pass


def test_api_key_never_leaks(server: OpenAIServer) -> None:
    """The key is absent from the repr, every error and its causes, and the retry logs."""
    server.script(_status(503, f"bad key {KEY}"), _status(401, f"Incorrect API key: {KEY}"),
                  Reply(kind="raw", body=f"not json {KEY}".encode()))
    model = _model(server, max_retries=1)
    assert KEY not in repr(model) and KEY not in str(vars(model))
    errors: list[BaseException] = []
    with capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(ModelError) as info:
                model.invoke("hi")
            errors.append(info.value)
    assert [type(e) for e in errors] == [ModelAuthenticationError, ModelResponseError]
    assert "***" in str(errors[0])
    for error in errors:
        assert KEY not in _text(error)
    assert any(entry["event"] == "model_request_retry" for entry in logs)
    assert KEY not in repr(logs)
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"


def test_password_in_base_url_is_masked() -> None:
    """Credentials inside base_url are masked in the repr and in errors."""
    base_url = f"http://user:hunter2pass@127.0.0.1:{closed_port()}/v1"
    model = OpenAIChatModel("m", base_url=base_url, max_retries=0)
    assert "hunter2pass" not in repr(model)
    with pytest.raises(ModelConnectionError) as info:
        model.invoke("hi")
    assert "hunter2pass" not in str(info.value) and "127.0.0.1" in str(info.value)
