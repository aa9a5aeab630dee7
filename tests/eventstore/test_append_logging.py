"""Appends log through structlog, and stay silent when the application configured nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from chatledger.eventstore import EventStore, HumanMessage, MessageAppended, SessionKey
from chatledger.eventstore.postgres._plans import _notify_lost


@pytest.fixture(autouse=True)
def _unconfigured_structlog() -> Iterator[None]:
    """Each test starts with structlog unconfigured and leaves it so (capture_logs configures it)."""
    was_configured = structlog.is_configured()
    if not was_configured:
        structlog.reset_defaults()
    yield
    if not was_configured:
        structlog.reset_defaults()


def said(text: str) -> MessageAppended:
    """A MessageAppended event carrying a human message with ``text``."""
    return MessageAppended(message=HumanMessage(text))


def test_append_logs_stream_versions_count_and_duration(store: EventStore) -> None:
    """An append logs "append" at debug with stream_id, from/to versions, count, duration_ms."""
    key = SessionKey(user_id="123", conversation_id="1")
    store.append(key, [said("a"), said("b")])
    with capture_logs() as logs:
        store.append(key, [said("c"), said("d"), said("e")])
    appends = [e for e in logs if e["event"] == "append"]
    assert len(appends) == 1
    entry = appends[0]
    assert entry["log_level"] == "debug"
    assert entry["stream_id"] == key.stream_id
    assert (entry["from_version"], entry["to_version"], entry["count"]) == (3, 5, 3)
    assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0


def test_failed_append_logs_no_append(store: EventStore) -> None:
    """A stale append is not logged as an append."""
    store.append("s", [said("a")])
    with capture_logs() as logs, pytest.raises(Exception, match="expected 0"):
        store.append("s", [said("b")], expected_version=0)
    assert [e for e in logs if e["event"] == "append"] == []


def test_unconfigured_structlog_prints_nothing(store: EventStore,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """With structlog unconfigured, appends, reads and verify write nothing to stdout/stderr."""
    assert not structlog.is_configured()
    store.append("s", [said("a")])
    store.read("s")
    store.verify()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_a_lost_notification_is_logged_only_where_logging_is_configured(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The warning for an append whose notification was lost after its COMMIT follows the
    same rule as every other log line: nothing printed while structlog is unconfigured."""
    _notify_lost(OSError("server closed the connection unexpectedly"))
    assert capsys.readouterr() == ("", "")
    with capture_logs() as logs:
        _notify_lost(OSError("server closed the connection\n unexpectedly"))
    assert [(e["event"], e["log_level"], e["error"]) for e in logs] == [
        ("notify_failed", "warning", "server closed the connection unexpectedly")]
