"""LangGraph's own checkpointer conformance suite, every capability, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from chatledger.runtime.langgraph import ChatledgerSaver
from tests.conftest import make_store


def test_conformance_suite_passes_every_capability(backend: str, tmp_path: Path) -> None:
    """Base and every extended capability are detected and pass, test by test."""
    stores = []

    @checkpointer_test(name=f"ChatledgerSaver[{backend}]")
    async def saver() -> AsyncIterator[ChatledgerSaver]:
        store = make_store(backend, tmp_path / str(len(stores)))
        stores.append(store)
        yield ChatledgerSaver(store)

    (tmp_path / "0").mkdir()
    for i in range(1, 9):
        (tmp_path / str(i)).mkdir()
    report = asyncio.run(validate(saver))
    for store in stores:
        store.close()
    results = report.results
    assert {c.value for c in ALL_CAPABILITIES} == set(results)
    failures = {name: r.failures for name, r in results.items() if not r.passed}
    assert failures == {}
    assert all(r.detected and r.tests_failed == 0 and r.tests_passed > 0
               for r in results.values())
    assert report.passed_all()
