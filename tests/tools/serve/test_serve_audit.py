"""The web view against hostile content, tampered logs, head files, unknown events and big
sessions."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from starlette.testclient import TestClient

from chatledger.eventstore import (
    AIMessage,
    Event,
    EventStore,
    HumanMessage,
    MessageAppended,
    Record,
    RunRecorded,
    SessionKey,
    SessionTagged,
    ToolMessage,
    open_store,
)
from chatledger.tools.serve import create_app
from chatledger.tools.serve._app import CHAT_PAGE, HISTORY_PAGE, LOG_PAGE
from chatledger.tools.serve._views import chat_items, message_view
from tests.tools.serve.support import MAIN, V_TOOL_RESULT, ReadOnly, populate

SCRIPT = "<script>alert('x')</script>"
ATTRIBUTE = '"><img src=x onerror="alert(1)">'
BIDI = "access granted\u202e gnp.exe"


def client_for(store: Any) -> TestClient:
    """An HTTP client for the web view over ``store``."""
    return TestClient(create_app(store))


def test_hostile_content_is_shown_as_text(ledger: EventStore) -> None:
    """Script tags, attribute breakouts and bidi overrides in keys, messages, tool calls,
    names, tags and errors all arrive as visible text, never as markup or reordering."""
    key = SessionKey(user_id=SCRIPT, conversation_id=BIDI)
    ledger.append(key, [
        MessageAppended(message=HumanMessage(content=SCRIPT + ATTRIBUTE, name=ATTRIBUTE)),
        MessageAppended(message=AIMessage(content=[{"type": "text", "text": BIDI},
                                                   {"type": ATTRIBUTE, SCRIPT: 1}],
                                          tool_calls=[{"name": SCRIPT, "args": {"q": ATTRIBUTE},
                                                       "id": ATTRIBUTE}])),
        MessageAppended(message=ToolMessage(content=SCRIPT, tool_call_id=ATTRIBUTE)),
        RunRecorded(run_id=ATTRIBUTE, status=SCRIPT, model=BIDI, error=SCRIPT + ATTRIBUTE),
        SessionTagged(added=[SCRIPT]),
    ])
    client = client_for(ReadOnly(ledger))
    pages = [client.get("/").text,
             client.get("/?" + urlencode({"filter": f"user_id={SCRIPT}"})).text,
             client.get("/session?" + urlencode({"sid": key.stream_id})).text,
             client.get("/session?" + urlencode({"sid": key.stream_id, "view": "history"})).text,
             client.get("/log?" + urlencode({"sid": key.stream_id})).text,
             client.get("/session?" + urlencode({"sid": f"user_id={SCRIPT}"})).text]
    for html in pages:
        assert "<script>alert" not in html and "<img" not in html
        # The raw key travels only inside form values, where it is sent back, never shown.
        assert 'onerror="' not in html and "\u202e" not in re.sub(r'value="[^"]*"', "", html)
    session = pages[2]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in session
    assert "&#34;&gt;&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in session
    assert "access granted" in session and ">\u27e8U+202E\u27e9</span> gnp.exe" in session
    assert "&lt;script&gt;alert" in pages[0] and "\u27e8U+202E\u27e9" in pages[0]
    assert "&lt;script&gt;alert" in pages[1]


def test_tampered_rows_are_highlighted_in_the_log(tmp_path: Path) -> None:
    """A payload edited behind the store's back: verify's problems mark exactly that row."""
    path = tmp_path / "ledger.db"
    with open_store(f"sqlite:///{path}") as store:
        populate(store)
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET data = replace(data, '14:05', '15:05') "
                 "WHERE stream_id = ? AND version = ?", (MAIN.stream_id, V_TOOL_RESULT))
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}") as store:
        problems = store.verify(MAIN).problems
        html = client_for(ReadOnly(store)).get("/log?" + urlencode({"sid": MAIN.stream_id})).text
    assert problems and {p.version for p in problems} == {V_TOOL_RESULT}
    assert re.findall(r'<tr id="v(\d+)" class="bad">', html) == [str(V_TOOL_RESULT)]
    assert f"Verify found {len(problems)} problem" in html
    assert problems[0].kind in html


class NoHeads(ReadOnly):
    """A store without log heads (``head`` is not callable)."""

    head = None


def test_head_upload_says_not_available_without_heads(ledger: EventStore) -> None:
    """With a store that has no head(), the form is disabled and a POST answers 501 saying so."""
    client = client_for(NoHeads(ledger))
    html = client.get("/verify").text
    assert 'id="heads-unavailable">Not available' in html and "<fieldset disabled>" in html
    response = client.post("/verify", files={"head": ("head.json", b'{"size": 1}')})
    assert response.status_code == 501 and "Not available" in response.text


def test_head_upload_checks_the_log_when_the_store_can(ledger: EventStore) -> None:
    """An uploaded head is checked: consistent, inconsistent or not a head."""
    client = client_for(ReadOnly(ledger))
    assert "heads-unavailable" not in client.get("/verify").text
    head = ledger.head()
    good = client.post("/verify", files={"head": ("head.json", head.to_json().encode())})
    assert good.status_code == 200 and 'id="head-verdict">Consistent' in good.text
    ahead = msgspec.structs.replace(head, size=head.size + 99)
    bad = client.post("/verify", files={"head": ("head.json", ahead.to_json().encode())})
    assert 'id="head-verdict">Consistent' not in bad.text and "fewer than" in bad.text
    junk = client.post("/verify", files={"head": ("head.json", b"not json")})
    assert junk.status_code == 400 and "not a log head" in junk.text
    assert client.post("/verify", files={"other": ("x", b"{}")}).status_code == 400


def test_head_upload_with_a_size_past_what_the_store_keeps_is_a_400(ledger: EventStore) -> None:
    """A head whose size or position no 64-bit column can hold is not a head: a 400 page, as
    the command line refuses it, never a server error."""
    client = client_for(ReadOnly(ledger))
    head = ledger.head()
    for field in ("size", "position"):
        huge = head.to_json().replace(f'"{field}":{getattr(head, field)}',
                                      f'"{field}":99999999999999999999999')
        assert "99999999999999999999999" in huge
        response = client.post("/verify", files={"head": ("head.json", huge.encode())})
        assert response.status_code == 400 and "not a log head" in response.text


def test_whole_log_verify_on_request(client: TestClient) -> None:
    """/verify?all=1 verifies every session and says so."""
    assert "Verified: " in client.get("/verify?all=1").text
    assert 'id="verdict"' not in client.get("/verify").text


class ModelCalled(Event, tag="model_called_test", frozen=True, kw_only=True):
    """A stand-in for a model-call event linked to its run."""

    run_id: str
    provider: str
    model: str
    request: list[HumanMessage]
    response: AIMessage
    usage: dict[str, int]
    latency_ms: float


class Mystery(Event, tag="mystery_test", frozen=True, kw_only=True):
    """An event type the web view has never heard of."""

    payload: dict[str, Any]


def _record(version: int, event: Any) -> Record:
    tag = type(event).__struct_config__.tag
    return Record(position=version, stream_id=MAIN.stream_id, version=version,
                  event_id=f"e{version}", type=str(tag), recorded_at=datetime.now(UTC),
                  event=event, meta={}, digest="d" * 64, chain="c" * 64)


def test_model_calls_render_inside_their_run_and_unknown_events_generically() -> None:
    """An event linked by run_id shows inside its run with request, response and usage; an
    unknown event type shows as its type and JSON; a call whose run is off the page stays."""
    call = ModelCalled(run_id="r1", provider="openai", model="gpt-x",
                       request=[HumanMessage(content="hi")], response=AIMessage(content="hello"),
                       usage={"input_tokens": 3}, latency_ms=4.5)
    records = [_record(1, call), _record(2, RunRecorded(run_id="r1", status="ok")),
               _record(3, Mystery(payload={"a": [1, 2]})),
               _record(4, ModelCalled(**{**msgspec.structs.asdict(call), "run_id": "elsewhere"}))]
    items = chat_items(records)
    assert [i.kind for i in items] == ["run", "event", "event"]
    run = items[0].run
    assert run is not None and len(run.model_calls) == 1
    view = run.model_calls[0]
    assert view.type == "model_called_test"
    assert [name for name, _ in view.fields][:3] == ["provider", "model", "latency_ms"]
    assert ("usage", '{\n  "input_tokens": 3\n}') in view.fields
    assert [m.blocks[0].text for m in view.request] == ["hi"]
    assert [m.blocks[0].text for m in view.response] == ["hello"]
    assert '"a": [' in items[1].text and items[1].type == "mystery_test"
    assert '"run_id": "elsewhere"' in items[2].text


class ExtraEvents(ReadOnly):
    """A store whose MAIN session reads with a model call and an unknown event added."""

    def read(self, key: Any, **kwargs: Any) -> list[Record]:
        records = list(self._store.read(key, **kwargs))
        if SessionKey.coerce(key) == MAIN:
            records += [_record(90, ModelCalled(
                run_id="run-ok", provider="local", model="m", request=[HumanMessage(content="q")],
                response=AIMessage(content="a"), usage={"total_tokens": 9}, latency_ms=1.0)),
                _record(91, Mystery(payload={"secret": "<b>x</b>"}))]
        return records


def test_session_page_renders_model_calls_and_unknown_events(ledger: EventStore) -> None:
    """On the page, the model call appears inside run-ok and the unknown event as escaped JSON."""
    html = client_for(ExtraEvents(ledger)).get(
        "/session?" + urlencode({"sid": MAIN.stream_id})).text
    run = re.search(r'<div class="run status-ok">.*?</details>\s*</div>', html, re.S)
    assert run is not None and "model call <code>model_called_test</code>" in run.group(0)
    assert "total_tokens" in run.group(0)
    assert "event <code>mystery_test</code>" in html and "&lt;b&gt;x&lt;/b&gt;" in html


@pytest.mark.slow
def test_a_10000_message_session_is_paged(tmp_path: Path) -> None:
    """A 10,000-message session: each page reads one window of events and renders one page."""
    key = SessionKey(session_id="big")
    with open_store(f"sqlite:///{tmp_path / 'big.db'}", durability="fast") as store:
        for start in range(0, 10_000, 1000):
            store.append(key, [MessageAppended(message=HumanMessage(content=f"message {n}"))
                               for n in range(start, start + 1000)])
        reader = ReadOnly(store)
        client = client_for(reader)
        chat = client.get("/session?" + urlencode({"sid": key.stream_id}))
        reads = [kw for name, kw in reader.reads if name == "read"]
        # One window of the chat, plus the first event only, to see whether it is a fork.
        assert reads == [{"until_version": 1},
                         {"after_version": 10_000 - CHAT_PAGE, "until_version": 10_000}]
        assert chat.text.count('class="item kind-message"') == CHAT_PAGE
        assert "message 9999" in chat.text and "message 9899<" not in chat.text
        assert '<strong id="history-count">10000</strong>' in chat.text
        history = client.get("/session?" + urlencode({"sid": key.stream_id, "view": "history",
                                                      "offset": 5000})).text
        assert history.count('<div class="msg role-') == HISTORY_PAGE
        assert "message 5000<" in history and "message 5100<" not in history
        reader.reads.clear()
        log = client.get("/log?" + urlencode({"sid": key.stream_id, "after": 200})).text
        assert log.count('<tr id="v') == LOG_PAGE and '<tr id="v201"' in log
        assert [kw for name, kw in reader.reads if name == "read"] == [
            {"after_version": 200, "until_version": 200 + LOG_PAGE}]


def test_a_failed_tool_result_shows_its_status_and_artifact() -> None:
    """A tool result with status error and an artifact shows both in its metadata."""
    view = message_view(ToolMessage(content="boom", tool_call_id="c1", status="error",
                                    artifact={"rows": 3}))
    assert view.tool_call_id == "c1" and view.extra is not None
    assert '"status": "error"' in view.extra and '"rows": 3' in view.extra
