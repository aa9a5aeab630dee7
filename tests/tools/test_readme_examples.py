"""Every command-line example of the README runs as written, in order, after ``chatledger demo``."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def readme_examples() -> list[str]:
    """The Example column of the README's command table, as shell lines."""
    text = README.read_text()
    section = text[text.index("## Command line"):]
    section = section[:section.index("\n## ", 1)]
    examples = []
    for line in section.splitlines():
        cells = re.split(r"(?<!\\)\|", line)
        example = cells[-2].strip() if len(cells) >= 4 else ""
        if example.startswith("`") and "chatledger " in example:
            examples.append(example.strip("`").replace("\\|", "|"))
    return examples


def langchain_database(path: Path) -> None:
    """A LangChain ``SQLChatMessageHistory`` file, as LangChain writes it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE message_store (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "session_id TEXT, message TEXT)")
    conn.executemany("INSERT INTO message_store (session_id, message) VALUES (?, ?)", [
        ("lc-1", '{"type": "human", "data": {"content": "hi", "type": "human"}}'),
        ("lc-1", '{"type": "ai", "data": {"content": "hello", "type": "ai"}}'),
    ])
    conn.commit()
    conn.close()


def test_the_readme_lists_every_command_with_an_example() -> None:
    """The table holds an example for each command the CLI has."""
    from chatledger.tools.cli import cli

    examples = readme_examples()
    named = {e.split("chatledger ", 1)[1].split()[0] for e in examples}
    named |= {e.split()[3] for e in examples if e.startswith("chatledger --db")}
    named.discard("--db")
    assert set(cli.commands) <= named, set(cli.commands) - named


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when something already listens on ``port`` (say, another test run's server)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def serve_answers(example: str, cwd: Path, env: dict[str, str]) -> None:
    """Start a ``chatledger serve`` example, wait for its first page, then stop it."""
    port = int(example.split("--port", 1)[1].split()[0]) if "--port" in example else 8765
    if port_in_use(port):  # the port of the example is busy here: the same command elsewhere
        new = free_port()
        example = example.replace(f"--port {port}", f"--port {new}")
        port = new
    proc = subprocess.Popen(["bash", "-c", f"exec {example}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    return
            except OSError:
                assert proc.poll() is None, (example, proc.communicate()[1])
                assert time.monotonic() < deadline, example
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_every_readme_example_runs_after_the_demo(tmp_path: Path) -> None:
    """Each example exits 0 with nothing on stderr that says Error (``serve`` answers its
    first page)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHATLEDGER_URL", "OPENAI_BASE_URL")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    langchain_database(tmp_path / "memory.db")
    examples = readme_examples()
    assert examples[0] == "chatledger demo" and len(examples) >= 14
    for example in examples:
        if example.startswith("chatledger serve"):
            serve_answers(example, tmp_path, env)
            continue
        done = subprocess.run(["bash", "-c", example], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (example, done.stdout[-2000:], done.stderr)
        assert "Error" not in done.stderr, (example, done.stderr)
