"""Output helpers: aligned tables, one-line summaries, progress bars only on a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from chatledger.tools._output import progress, shorten, table


def test_table_aligns_columns_under_a_rule() -> None:
    """Columns are padded to their widest cell; the header is underlined."""
    assert table(["A", "LONG"], [["xyz", 1], ["", None], ["a", "b"]]) == (
        "A    LONG\n"
        "---  ----\n"
        "xyz  1\n"
        "\n"
        "a    b"
    )


def test_shorten_flattens_and_cuts() -> None:
    """Newlines become spaces and long text ends with an ellipsis."""
    assert shorten("a\nb   c", 10) == "a b c"
    assert shorten("abcdefghij", 5) == "abcd…"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long work on a terminal shows a labelled bar on stderr and still yields every item."""
    fake = _Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    with progress(range(5000), length=5000, label="exporting") as items:
        assert sum(1 for _ in items) == 5000
    assert "exporting" in fake.getvalue()


def test_progress_is_silent_when_stderr_is_not_a_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pipe or a log file there is no bar."""
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    with progress(range(5000), length=5000, label="exporting") as items:
        assert list(items) == list(range(5000))
    assert plain.getvalue() == ""
