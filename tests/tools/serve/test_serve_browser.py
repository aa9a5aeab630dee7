"""The web view in a real browser: Debian's chromium, headless, driven by Playwright, against a
``chatledger serve`` process on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from chatledger.eventstore import open_store
from tests.tools.serve.support import MAIN, V_RUN_OK, V_TAGGED, populate

# Flags for a sandboxless, offline, quiet headless run (CI runs as root in a container).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOTS = "CHATLEDGER_SCREENSHOTS"
"""A folder to copy the screenshots to as well (how the README's picture is made)."""


def chromium() -> str:
    """Debian's chromium; skips without it, except under CI=true, where that is a failure."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``chatledger serve`` on a populated ledger, as its own process; yields its base URL."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_store(url) as store:
        populate(store)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-P", "-m", "chatledger.tools", "--db", url, "serve",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("chatledger serve did not start: "
                                         + (tmp_path / "serve.log").read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def shown_versions(page: Page) -> list[int]:
    """The versions of the chat items on the page."""
    return [int(v) for v in page.locator("#chat .item").evaluate_all(
        "items => items.map(i => i.dataset.version)")]


def save(page: Page, tmp_path: Path, name: str) -> None:
    """Screenshot the page into tmp_path (and into $CHATLEDGER_SCREENSHOTS when set)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    folder = os.environ.get(SCREENSHOTS)
    if folder:
        shutil.copy(path, Path(folder) / name)


@pytest.mark.slow
def test_browse_the_list_open_a_session_and_move_the_slider(server: str, tmp_path: Path) -> None:
    """Open the list, click into a session, drag the version slider to v6 and step back to v5
    with the keyboard: each time the chat shows exactly the events up to that version."""
    executable = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(server + "/")
            assert page.locator("table.sessions tbody tr").count() == 4
            save(page, tmp_path, "serve-sessions.png")

            with page.expect_navigation():
                page.locator("table.sessions a", has_text="conversation_id=c1").click()
            assert "/session?sid=" in page.url
            assert shown_versions(page) == list(range(1, V_TAGGED + 1))
            assert "Showing the latest version, 13." in page.locator("#asof-status").inner_text()

            slider = page.locator("#version")
            box = slider.bounding_box()
            assert box is not None
            thumb = 16  # Chromium's default range thumb; the click lands within ±0.5 of a step
            x = box["x"] + thumb / 2 + (box["width"] - thumb) * V_RUN_OK / V_TAGGED
            with page.expect_navigation():
                page.mouse.click(x, box["y"] + box["height"] / 2)
            assert f"version={V_RUN_OK}" in page.url
            assert shown_versions(page) == list(range(1, V_RUN_OK + 1))
            status = page.locator("#asof-status").inner_text()
            assert f"Showing version {V_RUN_OK} of {V_TAGGED}" in status
            assert page.locator("#history-count").inner_text() == "5"
            assert page.locator("#version-out").inner_text() == str(V_RUN_OK)
            chat = page.locator("#chat").inner_text()
            assert "It is 14:05." in chat and "run ok" in chat
            assert "Look at this picture" not in chat
            save(page, tmp_path, "serve-session.png")

            with page.expect_navigation():
                page.locator("#version").press("ArrowLeft")
            assert shown_versions(page) == list(range(1, V_RUN_OK))
            assert "run ok" not in page.locator("#chat").inner_text()

            with page.expect_navigation():
                page.get_by_role("link", name="History as the model sees it").click()
            messages = page.locator("#chat .msg .text").all_inner_texts()
            assert messages == ["You are terse.", "What time is it in Zürich?", "14:05",
                                "It is 14:05."]
            assert MAIN.stream_id.split("/")[0].split("=")[1] in page.title()
        finally:
            browser.close()
