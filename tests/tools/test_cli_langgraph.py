"""The CLI on a LangGraph thread: history, log, export and verify see the graph's messages."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.messages import HumanMessage

from chatledger.eventstore import open_store
from chatledger.runtime.langgraph import ChatledgerSaver
from tests.runtime.test_langgraph_saver import graph
from tests.tools.cli_support import run


def test_a_graph_thread_is_a_session_like_any_other(tmp_path: Path) -> None:
    """history lists the graph's messages, log names checkpoints, jsonl exports each once."""
    db = f"sqlite:///{tmp_path / 'g.db'}"
    with open_store(db) as store:
        app = graph(ChatledgerSaver(store))
        for turn in range(2):
            app.invoke({"messages": [HumanMessage(f"hi {turn}")]},
                       {"configurable": {"thread_id": "42"}})
    history = run(["--db", db, "history", "thread_id=42", "--json"])
    assert history.exit_code == 0, history.output
    assert "echo: hi 1" in history.output
    log = run(["--db", db, "log", "thread_id=42"])
    assert "checkpoint_saved" in log.output and "step 0, +1 messages" in log.output
    out = tmp_path / "x.jsonl"
    assert run(["--db", db, "export", "--format", "jsonl", "--out", str(out)]).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["message"]["content"] for line in lines] == ["hi 0", "echo: hi 0", "hi 1",
                                                              "echo: hi 1"]
    assert all(line["key"] == {"thread_id": "42"} for line in lines)
    assert run(["--db", db, "verify"]).exit_code == 0
