"""The web view on a LangGraph thread: its history and a readable log of its checkpoints."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from langchain_core.messages import HumanMessage
from starlette.testclient import TestClient

from chatledger.eventstore import SessionKey, open_store
from chatledger.runtime.langgraph import ChatledgerSaver
from chatledger.tools.serve import create_app
from tests.runtime.test_langgraph_saver import graph


def test_a_graph_thread_shows_its_messages_and_checkpoints(tmp_path: Path) -> None:
    """The session page shows each checkpoint's added messages, not LangGraph's serialised
    body; the raw log still has every event."""
    with open_store(f"sqlite:///{tmp_path / 'g.db'}") as store:
        graph(ChatledgerSaver(store)).invoke({"messages": [HumanMessage("hello graph")]},
                                            {"configurable": {"thread_id": "42"}})
        sid = SessionKey(thread_id="42").stream_id
        with TestClient(create_app(store)) as client:
            session = client.get(f"/session?{urlencode({'sid': sid})}")
            log = client.get(f"/log?{urlencode({'sid': sid})}")
    assert session.status_code == 200 and "echo: hello graph" in session.text
    assert "messages_added" in session.text and "body_type" not in session.text
    assert log.status_code == 200 and "checkpoint_saved" in log.text
