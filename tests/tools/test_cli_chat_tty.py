"""``chatledger chat`` on a real terminal (a pseudo-terminal): line editing, and any bytes typed."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatledger.eventstore import open_store

CHATLEDGER = Path(sys.executable).with_name("chatledger")


def read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    """Read the terminal until ``needle`` shows up (or fail after ``timeout`` seconds)."""
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        assert time.monotonic() < deadline, out
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_chat_on_a_terminal_edits_lines_and_survives_any_byte(tmp_path: Path) -> None:
    """Arrow keys edit the line before it is sent, and a byte that is not UTF-8 is replaced
    instead of ending the chat; both turns are saved."""
    import pty

    try:
        master, slave = pty.openpty()
    except OSError as e:
        pytest.skip(f"no pseudo-terminal here ({e})")
    env = {k: v for k, v in os.environ.items() if k not in ("CHATLEDGER_URL", "OPENAI_BASE_URL")}
    env["TERM"] = "xterm"
    url = f"sqlite:///{tmp_path / 'tty.db'}"
    proc = subprocess.Popen([str(CHATLEDGER), "--db", url, "chat", "tty"], stdin=slave,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    try:
        read_until(master, b"you> ")
        os.write(master, b"hllo" + b"\x1b[D" * 3 + b"e\r")  # type hllo, go back 3, insert e
        read_until(master, b"You said: hello")
        os.write(master, b"bad \xff byte\r")
        read_until(master, b"You said: bad")
        os.write(master, b"/quit\r")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(master)
    with open_store(url, readonly=True) as store:
        said = [m.text for m in store.load_history("tty")[1]][0::2]
    assert said == ["hello", "bad \ufffd byte"]
