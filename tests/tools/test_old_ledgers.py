"""verify, replay and export keep working on ledgers written by the previous release."""

from __future__ import annotations

import shutil
from pathlib import Path

from chatledger.eventstore import open_store
from chatledger.projections import recorded_turns
from chatledger.runtime.models import FakeChatModel
from chatledger.tools.export import export
from chatledger.tools.replay import replay
from tests.projections.test_turns import FIXTURE


def test_old_ledgers_still_verify_replay_and_export(tmp_path: Path) -> None:
    """verify, replay and export work on a database written by the previous release."""
    shutil.copy(FIXTURE, tmp_path / "old.db")
    with open_store(f"sqlite:///{tmp_path / 'old.db'}") as store:
        assert store.verify().ok
        replayed = replay(store, "fixture", FakeChatModel(["Hello Bob.", "Your name is Bob."]))
        assert [r.run_id for r in replayed][:2] == [t.run.run_id for t in
                                                  recorded_turns(store.read("fixture"))][:2]
        assert [m.text for m in replayed[1].recorded] == ["Your name is Bob."]
        out = tmp_path / "out.jsonl"
        export(store, str(out), fmt="jsonl", key_filter={})
        assert "Your name is Bob." in out.read_text()
