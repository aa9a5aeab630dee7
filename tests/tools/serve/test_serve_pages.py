"""Every page of the web view over HTTP: what it shows, its paging, its errors, and that it
never writes."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from chatledger.eventstore import EventStore, HumanMessage, MessageAppended, SessionKey
from chatledger.projections import ChatHistory
from chatledger.runtime import ChatPromptTemplate, MessagesPlaceholder, RunnableWithMessageHistory
from chatledger.runtime.models import FakeChatModel
from chatledger.tools.serve import create_app
from tests.tools.serve.support import (
    FORK,
    FORK_OF_FORK,
    MAIN,
    PLAIN,
    V_BLOCKS,
    V_CLEAR,
    V_ERASED,
    V_REDACTED,
    V_RUN_ERROR,
    V_RUN_OK,
    V_TAGGED,
    V_TOOL_CALL,
    V_TOOL_RESULT,
    ReadOnly,
    append_future_event,
)


def page(client: TestClient, path: str, **params: object) -> str:
    """GET a page that must answer 200, as text."""
    response = client.get(f"{path}?{urlencode(params)}" if params else path)
    assert response.status_code == 200, response.text
    return response.text


def item(html: str, version: int) -> str:
    """The HTML of the chat item of one version ('' when it is not on the page)."""
    match = re.search(rf'<div class="item kind-\w+" id="v{version}".*?(?=<div class="item |</div>\s*</main>|\Z)',
                      html, re.S)
    return match.group(0) if match else ""


def versions_shown(html: str) -> list[int]:
    """The versions of the chat items on a page, in order."""
    return [int(v) for v in re.findall(r'class="item kind-\w+" id="v(\d+)"', html)]


def test_sessions_page_lists_key_parts_counts_and_tags(client: TestClient,
                                                       ledger: EventStore) -> None:
    """The list shows every session's key parts, message count, version, last activity, tags."""
    html = page(client, "/")
    for key in (MAIN, FORK, FORK_OF_FORK, PLAIN):
        assert f'href="/session?{urlencode({"sid": key.stream_id})}"' in html
    info = ledger.session(MAIN)
    assert info is not None
    row = re.search(r"<tr>\s*<td><a href=\"/session\?sid=conversation_id%3Dc1.*?</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[1] == str(info.message_count) and cells[2] == str(info.version)
    assert info.last_active.strftime("%Y-%m-%d %H:%M:%SZ") in cells[3]
    assert "vip" in cells[5]


def test_sessions_page_filters_by_key_part(client: TestClient) -> None:
    """filter=user_id=u1 shows that user's three sessions and not the other one."""
    html = page(client, "/", filter="user_id=u1")
    assert "conversation_id%3Dc1" in html and "conversation_id%3Dc3" in html
    assert "session_id%3Dplain" not in html
    assert "No sessions match" in page(client, "/", filter="user_id=nobody")


def test_sessions_page_pages_with_the_catalog_cursor(ledger: EventStore) -> None:
    """More than a page of sessions: a next link whose page holds the rest, none repeated."""
    for n in range(55):
        ledger.append(SessionKey(tenant="t", n=f"{n:03}"), [
            MessageAppended(message=HumanMessage(content="hi"))])
    client = TestClient(create_app(ReadOnly(ledger)))  # type: ignore[arg-type]
    first = page(client, "/", filter="tenant=t")
    link = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&")).text
    shown = r'href="/session\?sid=n%3D(\d{3})'
    ids = re.findall(shown, first) + re.findall(shown, second)
    assert sorted(ids) == [f"{n:03}" for n in range(55)]
    assert len(re.findall(shown, first)) == 50
    assert 'rel="next"' not in second


def test_bad_filter_is_a_clear_error(client: TestClient) -> None:
    """A filter that is not name=value pairs answers 400 with the reason."""
    response = client.get("/?" + urlencode({"filter": "1bad=x"}))
    assert response.status_code == 400
    assert "1bad" in response.text


def test_session_page_shows_the_conversation_as_a_chat(client: TestClient) -> None:
    """Roles, tool calls linked to their results, and every kind of content block."""
    html = page(client, "/session", sid=MAIN.stream_id)
    assert versions_shown(html) == list(range(1, V_TAGGED + 1))
    assert ">system<" in item(html, 1) and "You are terse." in item(html, 1)
    call = item(html, V_TOOL_CALL)
    assert 'id="call-call_1"' in call and "clock" in call and "&#34;city&#34;: &#34;Zürich&#34;" in call
    result = item(html, V_TOOL_RESULT)
    assert ">tool<" in result and 'href="#call-call_1"' in result and "14:05" in result
    blocks = item(html, V_BLOCKS)
    assert "Look at this picture" in blocks
    assert "image: <code dir=\"ltr\">https://example.invalid/cat.png</code>" in blocks
    assert "<img" not in blocks
    assert "&#34;format&#34;: &#34;wav&#34;" in blocks


def test_session_page_shows_each_run(client: TestClient) -> None:
    """Each run: status, latency, model, error, and a link to the history version it read."""
    html = page(client, "/session", sid=MAIN.stream_id)
    ok = item(html, V_RUN_OK)
    assert "run ok" in ok and "12.50 ms" in ok and "fake-model" in ok
    assert "version=2&amp;view=history" in ok and "no model calls recorded" in ok
    assert re.search(r'input <a href="#v2">v2</a>\s*· output <a href="#v3">v3</a> '
                     r'<a href="#v4">v4</a> <a href="#v5">v5</a>', ok)
    bad = item(html, V_RUN_ERROR)
    assert "status-error" in bad and "run error" in bad
    assert "ModelTimeoutError: no answer in 60 s" in bad and "60000.00 ms" in bad
    assert "input (1), output (0)" in bad and "the input of a failed run" in bad


def test_session_page_marks_clears_erasures_and_tags(client: TestClient) -> None:
    """A clear, an erased payload, its redaction and a tag are marked at their versions."""
    html = page(client, "/session", sid=MAIN.stream_id)
    assert "History cleared here" in item(html, V_CLEAR) and "start over" in item(html, V_CLEAR)
    erased = item(html, V_ERASED)
    assert "Erased message_appended" in erased and "4111 1111" not in html
    redacted = item(html, V_REDACTED)
    assert f"#v{V_ERASED}" in redacted and "user asked" in redacted
    assert "+vip" in item(html, V_TAGGED)


def test_fork_tree_links_both_ways(client: TestClient) -> None:
    """A fork links to its parent and version; the parent's tree links down to every fork."""
    parent = page(client, "/session", sid=MAIN.stream_id)
    tree = re.search(r'<section class="forks">.*?</section>', parent, re.S)
    assert tree is not None
    for key in (FORK, FORK_OF_FORK):
        assert f'href="/session?{urlencode({"sid": key.stream_id})}"' in tree.group(0)
    assert "(this session)" in tree.group(0) and "forked at v5" in tree.group(0)
    child = page(client, "/session", sid=FORK.stream_id)
    forked = item(child, 1)
    assert "Forked from" in forked and "inheriting 5 messages" in forked
    assert f'href="/session?{urlencode({"sid": MAIN.stream_id, "version": 5})}"'.replace(
        "&", "&amp;") in forked
    grandchild = page(client, "/session", sid=FORK_OF_FORK.stream_id)
    assert f'href="/session?{urlencode({"sid": MAIN.stream_id})}"' in grandchild
    assert '<section class="forks">' not in page(client, "/session", sid=PLAIN.stream_id)


def test_version_selects_the_history_at_that_version(client: TestClient,
                                                     ledger: EventStore) -> None:
    """?version=v shows the events up to v, and the history view shows as_of(v) exactly."""
    chat = page(client, "/session", sid=MAIN.stream_id, version=V_TOOL_RESULT)
    assert versions_shown(chat) == [1, 2, 3, 4]
    assert 'value="4" data-autosubmit' in chat
    assert '<strong id="history-count">4</strong>' in chat
    history = page(client, "/session", sid=MAIN.stream_id, version=V_CLEAR + 2, view="history")
    _, expected = ledger.load_history_at(MAIN, version=V_CLEAR + 2)
    assert len(expected) == 1
    assert history.count('<div class="msg role-') == 1 and "Erased" not in history
    assert "You are terse." not in history
    before_clear = page(client, "/session", sid=MAIN.stream_id, version=V_CLEAR - 1,
                        view="history")
    _, expected = ledger.load_history_at(MAIN, version=V_CLEAR - 1)
    assert before_clear.count('<div class="msg role-') == len(expected) == 6


def test_time_picker_selects_the_version_at_that_time(client: TestClient,
                                                      ledger: EventStore) -> None:
    """?time= shows the version the store finds at that time; a time before all is version 0."""
    records = ledger.read(MAIN)
    moment = records[V_RUN_OK - 1].recorded_at
    expected, _ = ledger.load_history_at(MAIN, time=moment)
    html = page(client, "/session", sid=MAIN.stream_id,
                time=moment.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert f'value="{expected}" data-autosubmit' in html
    assert versions_shown(html) == list(range(1, expected + 1))
    early = records[0].recorded_at - timedelta(days=1)
    assert "No events at version 0" in page(client, "/session", sid=MAIN.stream_id,
                                             time=early.isoformat())


def test_session_errors_are_clear_pages(client: TestClient) -> None:
    """Unknown session 404, version beyond the head 404, bad number or time 400."""
    assert client.get("/session?sid=session_id%3Dnobody").status_code == 404
    assert client.get("/session").status_code == 400
    beyond = client.get("/session?" + urlencode({"sid": MAIN.stream_id, "version": 99}))
    assert beyond.status_code == 404 and "version 99 does not exist" in beyond.text
    assert client.get("/session?" + urlencode({"sid": MAIN.stream_id,
                                               "version": "x"})).status_code == 400
    assert client.get("/session?" + urlencode({"sid": MAIN.stream_id,
                                               "time": "yesterday"})).status_code == 400
    assert client.get("/session?" + urlencode({"sid": MAIN.stream_id,
                                               "view": "raw"})).status_code == 400


@pytest.mark.parametrize("path,params,needle", [
    ("/session", {"version": "\u00b2"}, "non-negative whole number"),
    ("/session", {"until": "\u0663"}, "non-negative whole number"),
    ("/session", {"view": "history", "offset": "\u00b9"}, "non-negative whole number"),
    ("/log", {"after": "\u00b2"}, "non-negative whole number"),
    ("/session", {"version": "9" * 5000}, "too large"),
    ("/log", {"after": "9" * 5000}, "too large"),
    ("/session", {"time": "9999-12-31T23:59:59-01:00"}, "out of range"),
    ("/session", {"time": "0001-01-01T00:00:00+01:00"}, "out of range"),
])
def test_malformed_numbers_and_times_are_clear_400_pages(client: TestClient, path: str,
                                                         params: dict[str, str],
                                                         needle: str) -> None:
    """Digits that are not ASCII, numbers past what the store keeps, and times that leave the
    calendar once in UTC are a 400 page naming the value, never a server error."""
    response = client.get(path + "?" + urlencode({"sid": MAIN.stream_id, **params}))
    assert response.status_code == 400 and needle in response.text, response.text[-500:]


def test_an_event_of_a_type_this_release_does_not_know_is_shown_as_its_tag_and_json(
        ledger: EventStore) -> None:
    """An event a newer chatledger wrote (a type tag this one does not know, every digest
    right) is shown on the chat and the log as its type and JSON; the rest of the page stays."""
    append_future_event(ledger, PLAIN, "session_annotated",
                        '{"type":"session_annotated","note":"<b>later</b>"}')
    client = TestClient(create_app(ReadOnly(ledger)))  # type: ignore[arg-type]
    for path in ("/session", "/log"):
        response = client.get(path + "?" + urlencode({"sid": PLAIN.stream_id}))
        assert response.status_code == 200, response.text[-400:]
        assert "session_annotated" in response.text and "hello" in response.text
        assert "&lt;b&gt;later&lt;/b&gt;" in response.text and "<b>later" not in response.text


def test_a_session_that_starts_with_a_newer_event_breaks_no_other_page(
        ledger: EventStore) -> None:
    """The fork tree reads every session's first event: one of a type this release does not
    know leaves that session out of the tree, and every page still answers."""
    newer = SessionKey(session_id="from-the-future")
    append_future_event(ledger, newer, "session_annotated", '{"type":"session_annotated"}')
    client = TestClient(create_app(ReadOnly(ledger)))  # type: ignore[arg-type]
    for key in (MAIN, FORK, newer):
        response = client.get("/session?" + urlencode({"sid": key.stream_id}))
        assert response.status_code == 200, response.text[-400:]
    assert "session_annotated" in response.text
    assert "from-the-future" in client.get("/").text


@pytest.mark.parametrize("type_,data", [("message_appended", '{"type":"message_appended"}'),
                                        ("session_annotated", "not json {"),
                                        ("session_annotated", '{"type":"other"}')])
def test_a_damaged_row_is_still_a_clear_error_page(ledger: EventStore, type_: str,
                                                   data: str) -> None:
    """A row of a known type that does not decode, or whose stored JSON does not parse or
    names another type, is no newer event: the page says the row is damaged."""
    append_future_event(ledger, PLAIN, type_, data)
    client = TestClient(create_app(ReadOnly(ledger)))  # type: ignore[arg-type]
    for path in ("/session", "/log"):
        response = client.get(path + "?" + urlencode({"sid": PLAIN.stream_id}))
        assert response.status_code == 503 and "damaged" in response.text


def test_log_page_shows_digests_chain_and_a_clean_verify(client: TestClient,
                                                         ledger: EventStore) -> None:
    """Every event row with its position, type, digest and chain; verify passes."""
    html = page(client, "/log", sid=MAIN.stream_id)
    assert 'id="verdict">Verified: all 13 events' in html
    for rec in ledger.read(MAIN):
        row = re.search(rf'<tr id="v{rec.version}".*?</tr>', html, re.S)
        assert row is not None
        assert f'title="{rec.digest}"' in row.group(0) and f'title="{rec.chain}"' in row.group(0)
        assert f"<td class=\"num\">{rec.position}</td>" in row.group(0)
    assert 'class="bad"' not in html


def test_static_files_and_security_headers(client: TestClient) -> None:
    """CSS and the slider script are served locally; pages forbid scripts from elsewhere."""
    assert "text/css" in client.get("/static/style.css").headers["content-type"]
    script = client.get("/static/slider.js")
    assert "data-autosubmit" in script.text
    assert client.get("/static/../_app.py").status_code == 404
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert "https://" not in page(client, "/").split("<main>")[0]


def test_every_page_only_reads(client: TestClient, reader: ReadOnly, ledger: EventStore) -> None:
    """Browsing every page and form calls no write method and leaves the log as it was."""
    before = ledger.last_position(), ledger.verify()
    for key in (MAIN, FORK, PLAIN):
        page(client, "/session", sid=key.stream_id)
        page(client, "/session", sid=key.stream_id, view="history", version=1)
        page(client, "/log", sid=key.stream_id)
    page(client, "/")
    page(client, "/verify", all=1)
    client.post("/verify", files={"head": ("head.json", b"{}")})
    assert {name for name, _ in reader.reads} >= {"sessions", "session", "read",
                                                   "load_history_at", "verify"}
    assert (ledger.last_position(), ledger.verify()) == before


def test_a_fork_made_while_serving_appears_in_the_tree(ledger: EventStore) -> None:
    """The fork tree is cached, but a fork appended after a page was shown appears next time."""
    client = TestClient(create_app(ReadOnly(ledger)))  # type: ignore[arg-type]
    assert '<section class="forks">' not in page(client, "/session", sid=PLAIN.stream_id)
    late = SessionKey(session_id="plain-2")
    ChatHistory(PLAIN, ledger).fork(late)
    html = page(client, "/session", sid=PLAIN.stream_id)
    assert '<section class="forks">' in html
    assert f'href="/session?{urlencode({"sid": late.stream_id})}"' in html


def test_model_calls_show_the_exact_prompt_the_model_saw(ledger: EventStore) -> None:
    """A recorded model call shows its request with the messages it shares with the turn put
    back: the rendered system prompt, the history it read and the new input."""
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You answer in {language}."), MessagesPlaceholder(variable_name="history"),
        ("human", "{input}")])
    chain = RunnableWithMessageHistory(
        prompt | FakeChatModel(["Ciao Bob!", "Ti chiami Bob."]),
        lambda session_id: ChatHistory(session_id, ledger),
        input_messages_key="input", history_messages_key="history")
    for text in ("hi im bob", "whats my name"):
        chain.invoke({"language": "italian", "input": text},
                     {"configurable": {"session_id": "prompted"}})
    with TestClient(create_app(ReadOnly(ledger))) as client:  # type: ignore[arg-type]
        html = page(client, "/session", sid=SessionKey.coerce("prompted").stream_id)
    second_run = html[html.rindex("You answer in italian."):]
    assert "hi im bob" in second_run and "whats my name" in second_run
    assert "Ti chiami Bob." in second_run
