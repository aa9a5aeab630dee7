"""Every Python block of the README runs as written, in order, in a fresh directory."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.pgsupport import drop_postgres_schemas, postgres_schema_url, postgres_url
from tests.runtime.openai_server import Reply, completion, running, text_stream

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[int, str]]:
    """(line, code) of each ```python block of the README, in order."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_readme_has_python_blocks() -> None:
    """The extraction finds the README's examples, so the test below is not empty."""
    assert len(python_blocks()) >= 5


@pytest.mark.postgres
def test_readme_python_blocks_run_in_order(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks run one after another in one namespace, as a reader pastes them into a
    session; OpenAI-compatible examples talk to a loopback server, PostgreSQL ones to the
    test server."""
    postgres_url()  # skips (fails under CI=true) without the server
    postgres_schema_url("chatledger_readme")  # the schema the README uses, dropped afterwards
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    with running() as server:
        server.script(Reply(body=completion("Hello Bob!")),
                      Reply(kind="sse", events=text_stream(["Your ", "name ", "is ", "Bob."])))
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for line, code in python_blocks():
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"the README block at line {line} failed: {e!r}") from e
    for value in namespace.values():
        close = getattr(value, "close", None)
        if type(value).__name__.endswith("Store") and close is not None:
            close()
    drop_postgres_schemas()
    assert os.path.exists(tmp_path / "memory.db")
