"""PostgreSQL: the store's connections when the server goes away, when every connection is busy,
and when a store is dropped without ``close()``."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from chatledger.eventstore import HumanMessage, MessageAppended, StoreError, open_store
from chatledger.eventstore.postgres import PostgresStore
from tests.pgsupport import postgres_empty_schema_url, postgres_test_schema, postgres_url

pytestmark = pytest.mark.postgres

SECRET = "s3cr3t-Passw0rd"


class Proxy:
    """A TCP proxy to the test server that a test can cut: ``cut()`` drops every connection
    through it and refuses new ones, ``blackhole()`` drops them and then accepts new ones
    without ever answering (a host that has gone silent)."""

    def __init__(self) -> None:
        params = conninfo_to_dict(postgres_url())
        self._server = (str(params.get("host", "127.0.0.1")), int(params.get("port", 5432)))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._silent = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
                if self._silent:
                    continue
                upstream = socket.create_connection(self._server)
                self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _stop_listening(self) -> None:
        try:  # wakes the accept() in progress, which close() alone does not
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def cut(self) -> None:
        self._stop_listening()
        self._drop()

    def blackhole(self) -> None:
        with self._lock:
            self._silent = True
        self._drop()

    def close(self) -> None:
        self._stop_listening()
        self._drop()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture
def schema_url(tmp_path: Path) -> str:
    """A fresh schema on the test server, holding one session."""
    url = postgres_empty_schema_url(postgres_test_schema(tmp_path))
    with open_store(url) as store:
        store.append("k", [MessageAppended(message=HumanMessage("hi"))])
    return url


def _via(proxy: Proxy, url: str, extra: str = "") -> str:
    """``url`` with its host and port replaced by the proxy's, and a password added."""
    params = conninfo_to_dict(url.partition("?")[0])
    query = url.partition("?")[2]
    return (f"postgresql://{params.get('user', 'postgres')}:{SECRET}@127.0.0.1:{proxy.port}/"
            f"{params.get('dbname', 'test')}?{query}{extra}")


def _fails_within(seconds: float, call: object) -> str:
    """Run ``call``, expecting a StoreError within ``seconds``; return its message."""
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        call()  # type: ignore[operator]
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f} s: {info.value}"
    return str(info.value)


def test_sync_calls_fail_at_once_when_the_server_goes_away(
        proxy: Proxy, schema_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Once the server refuses connections, every sync call raises one StoreError naming the
    database at once (as the async twins do), not after the pool's 30 s wait, and nothing is
    logged."""
    store = open_store(_via(proxy, schema_url))
    try:
        assert len(store.read("k")) == 1
        proxy.cut()
        caplog.clear()
        for _ in range(3):  # the first meets the lost idle connection, the others connect
            message = _fails_within(2.0, lambda: store.read("k"))
            assert f"127.0.0.1:{proxy.port}" in message and "***" in message
            assert SECRET not in message
        message = _fails_within(2.0, lambda: store.append(
            "k", [MessageAppended(message=HumanMessage("lost"))]))
        assert "Connection refused" in message and SECRET not in message
        assert [r for r in caplog.records if r.levelname not in ("DEBUG", "INFO")] == []
    finally:
        store.close()


def test_a_silent_server_fails_a_sync_call_within_the_connect_timeout(
        proxy: Proxy, schema_url: str) -> None:
    """A server that stops answering fails a sync call after ``connect_timeout``, not later."""
    store = open_store(_via(proxy, schema_url, "&connect_timeout=2"))
    try:
        assert store.version("k") == 1
        proxy.blackhole()
        # the first call may meet the cut idle connection; each later one has to connect
        messages = [_fails_within(5.0, lambda: store.version("k")) for _ in range(3)]
        assert "timeout" in messages[-1] and SECRET not in messages[-1]
    finally:
        store.close()


def test_a_busy_pool_makes_callers_wait_for_a_connection(schema_url: str) -> None:
    """With every connection in use, a call waits for one to come back rather than fail."""
    store = open_store(schema_url + "&pool_size=1")
    assert isinstance(store, PostgresStore)
    held = threading.Event()

    def hold() -> None:
        with store._pool.connection():
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5)
        started = time.monotonic()
        assert store.version("k") == 1
        assert time.monotonic() - started >= 0.3
    finally:
        holder.join()
        store.close()


DROP = """
import gc, sys, threading
from chatledger.eventstore import open_store

url = sys.argv[1]

def use_and_drop():
    store = open_store(url)
    store.read_all()
    store.version("k")

for _ in range(10):
    use_and_drop()
    gc.collect()
threads = [threading.Thread(target=use_and_drop) for _ in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
gc.collect()
# a store collected on a worker thread, by that thread
def drop_in_thread():
    use_and_drop()
    gc.collect()
for _ in range(5):
    t = threading.Thread(target=drop_in_thread)
    t.start()
    t.join()
print("done")
"""


def _connections(app_name: str) -> int:
    with psycopg.connect(postgres_url()) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (app_name,)).fetchone()
    assert row is not None
    return int(row[0])


def test_stores_dropped_without_close_print_nothing_and_leave_no_connection(
        schema_url: str) -> None:
    """Stores dropped unclosed, in the main thread and in worker threads, release their
    connections quietly: nothing on stderr, no connection left on the server."""
    app_name = f"chatledger_test_{uuid.uuid4().hex[:12]}"
    done = subprocess.run([sys.executable, "-P", "-c", DROP,
                           schema_url + f"&application_name={app_name}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
    deadline = time.monotonic() + 5
    while _connections(app_name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(app_name) == 0


def test_a_store_dropped_without_close_releases_its_connections_at_once(
        schema_url: str) -> None:
    """Collecting an unclosed store closes its idle connections, before the process ends."""
    import gc

    app_name = f"chatledger_test_{uuid.uuid4().hex[:12]}"
    store = open_store(schema_url + f"&application_name={app_name}")
    store.read_all()
    assert _connections(app_name) >= 1
    del store
    gc.collect()
    deadline = time.monotonic() + 5
    while _connections(app_name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(app_name) == 0


def test_a_connection_idle_too_long_is_replaced(schema_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle connection is reused, but not once it has been idle for MAX_IDLE_S (a firewall
    or the server may have cut it): it is closed and a new one made."""
    from chatledger.eventstore.postgres import _pools

    store = open_store(schema_url)
    assert isinstance(store, PostgresStore)
    try:
        with store._pool.connection() as conn:
            first = conn.info.backend_pid
        with store._pool.connection() as conn:
            assert conn.info.backend_pid == first
        monkeypatch.setattr(_pools, "MAX_IDLE_S", 0.0)
        time.sleep(0.01)
        with store._pool.connection() as conn:
            assert conn.info.backend_pid != first
        assert store.version("k") == 1
    finally:
        store.close()
