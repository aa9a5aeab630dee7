"""A writer killed with SIGKILL mid-stream leaves whole appends only, and the log keeps working."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from chatledger.eventstore import HumanMessage, MessageAppended, SessionKey, open_store

BATCH = 5
KEY = SessionKey(session_id="crash")

# Appends batches of BATCH events to session "crash", each event marked with its batch, and
# prints each batch number once its append has returned (committed). It never stops on its
# own. With hold >= 0, once `hold` batches are committed it stops inside the next append's
# write transaction, after two of its rows were inserted, prints "holding" and waits to be
# killed: a kill that is certain to land in the middle of an append.
WRITER = """
import sys, time
from chatledger.eventstore import HumanMessage, MessageAppended, open_store

url, durability, batch, size, hold = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
store = open_store(url, durability=durability, create=True)
committed = 0
inserts = 0

def trace(sql):
    global inserts
    if hold >= 0 and committed >= hold and sql.lstrip().startswith("INSERT INTO events"):
        inserts += 1
        if inserts == 3:
            print("holding", flush=True)
            time.sleep(600)

if hold >= 0:
    store._conn.set_trace_callback(trace)
pad = "x" * 3000
while True:
    events = [MessageAppended(message=HumanMessage(f"batch {batch} event {i} {pad}"))
              for i in range(size)]
    store.append("crash", events, meta={"batch": batch})
    committed += 1
    print(batch, flush=True)
    batch += 1
"""


def run_and_kill(url: str, durability: str, first_batch: int, progress: int,
                 *, hold: bool = False) -> list[int]:
    """Start a writer, wait until it reports ``progress`` committed batches, SIGKILL it.

    With ``hold``, the kill lands while the writer is inside its next append's transaction.
    Returns the batch numbers the writer reported as committed.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, durability, str(first_batch), str(BATCH),
         str(progress if hold else -1)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reported: list[int] = []
    held = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "holding":
                held = True
                break
            reported.append(int(line))
            if not hold and len(reported) >= progress:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert len(reported) >= progress, err
    assert held == hold, err
    return reported


def check_log(url: str) -> int:
    """Assert whole batches, contiguous versions and a verifying log; return the batch count."""
    with open_store(url) as store:
        records = store.read(KEY)
        assert [r.version for r in records] == list(range(1, len(records) + 1))
        by_batch: dict[int, list[str]] = defaultdict(list)
        for r in records:
            assert isinstance(r.event, MessageAppended)
            by_batch[r.meta["batch"]].append(r.event.message.text.split(" ")[3])
        batches = sorted(by_batch)
        assert batches == list(range(len(batches)))
        for b in batches:
            assert by_batch[b] == [str(i) for i in range(BATCH)], f"batch {b} is partial"
        assert len(records) == BATCH * len(batches)
        assert store.last_position() == len(records)
        version, history = store.load_history(KEY)
        assert version == len(records) and len(history) == len(records)
        assert store.verify().ok
        return len(batches)


def append_after_crash(url: str) -> None:
    """Assert that a conditional append still works and the log still verifies."""
    with open_store(url) as store:
        version = store.version(KEY)
        result = store.append(KEY, [MessageAppended(message=HumanMessage("after the crash"))],
                              expected_version=version)
        assert result.version == version + 1
        assert store.read(KEY)[-1].position == store.last_position()
        assert store.verify().ok


@pytest.mark.parametrize("durability", ["full", "fast"])
def test_sigkilled_writer_leaves_whole_appends(tmp_path: Path, durability: str) -> None:
    """After SIGKILL mid-stream every batch is all there or absent, and appends go on."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    next_batch = 0
    for round_ in range(3):
        reported = run_and_kill(url, durability, next_batch, progress=8 + 3 * round_)
        next_batch = check_log(url)
        assert max(reported) < next_batch, "a batch reported as committed was lost"
    append_after_crash(url)


def test_kill_inside_a_write_transaction_leaves_no_partial_append(tmp_path: Path) -> None:
    """A writer killed after inserting part of an append's rows leaves none of them."""
    url = f"sqlite:///{tmp_path / 'held.db'}"
    reported = run_and_kill(url, "full", 0, progress=4, hold=True)
    assert reported == [0, 1, 2, 3]
    assert check_log(url) == 4
    append_after_crash(url)
