"""PostgreSQL out of reach: requests answer 503 with a clear message (never hang, never
500) and the server recovers by itself when the database is back.

The server reaches PostgreSQL through a TCP proxy owned by the test, which can cut every
connection and refuse new ones (the database "goes away"), then come back on the same
port. `pg_terminate_backend` kills the server's sessions as a database restart does."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psycopg
import pytest

from jobq import errors
from jobq.storage.postgres import PostgresStorage
from tests import helpers

pytestmark = pytest.mark.postgres

P = 53


class Proxy:
    """Forwards 127.0.0.1:port to PostgreSQL; `cut()` drops everything, `restore()`
    listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = helpers.free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def url_for(self, pg_url: str) -> str:
        parts = urlsplit(pg_url)
        netloc = f"{parts.username}@127.0.0.1:{self.port}" if parts.username else \
            f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    parts = urlsplit(pg_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()


def _push(client: httpx.Client, n: int = 1) -> httpx.Response:
    body = b"\n".join(orjson.dumps({"spider": "s1"}) for _ in range(n))
    return client.post(f"/jobq/{P}/push", content=body)


def _wait_for(client: httpx.Client, path: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_database_gone_answers_503_then_recovers(
    pg_url: str, proxy: Proxy, tmp_path: Path
) -> None:
    server = helpers.Server(db=proxy.url_for(pg_url), log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            assert _push(client).status_code == 200
            proxy.cut()
            for request in (
                lambda: client.get(f"/jobq/{P}/list", params={"state": "pending"}),
                lambda: _push(client),
                lambda: client.post(f"/jobq/{P}/startjob"),
                lambda: client.get(f"/jobq/{P}/count"),
            ):
                started = time.monotonic()
                response = request()
                took = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert "database unavailable" in response.text
                assert took < 12, f"a request hung {took:.1f}s"
            proxy.restore()
            response = _wait_for(client, f"/jobq/{P}/count?state=pending")
            assert response.status_code == 200, response.text
            assert response.json() == 1, "the job acknowledged before the cut is there"
            assert _push(client).status_code == 200
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 2
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")


def test_killed_sessions_are_replaced_without_an_error(pg_url: str, tmp_path: Path) -> None:
    """As after a database restart: every pooled connection is dead at once."""
    server = helpers.Server(db=pg_url, log=tmp_path / "server.log").start()
    dbname = pg_url.rpartition("/")[2]
    try:
        with server.client() as client:
            assert _push(client, 3).status_code == 200
            for _ in range(3):
                with psycopg.connect(helpers.PG_BASE_URL, autocommit=True) as admin:
                    killed = admin.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name = 'jobq'", (dbname,)
                    ).fetchone()
                assert killed is not None and killed[0] >= 1
                # a dead pooled connection is retried on a new one: no request sees it
                statuses = [
                    client.get(f"/jobq/{P}/count", params={"state": "pending"}).status_code,
                    _push(client).status_code,
                    client.post(f"/jobq/{P}/startjob").status_code,
                ]
                assert statuses == [200, 200, 200], statuses
            assert _push(client).status_code == 200
    finally:
        server.stop()


@pytest.mark.anyio
async def test_open_against_a_closed_port_fails_fast_and_clearly() -> None:
    port = helpers.free_port()
    store = PostgresStorage(f"postgresql://postgres@127.0.0.1:{port}/nothing", timeout=2)
    started = time.monotonic()
    with pytest.raises(errors.StorageUnavailable, match="database unavailable"):
        await store.open()
    assert time.monotonic() - started < 10
    await store.close()


@pytest.mark.anyio
async def test_storage_answers_unavailable_while_cut_and_recovers(
    pg_url: str, proxy: Proxy
) -> None:
    from jobq.domain.jobs import State
    from jobq.domain.records import NewJob

    store = PostgresStorage(proxy.url_for(pg_url), pool_size=3, timeout=2)
    await store.open()
    try:
        job = NewJob("s1", State.PENDING, 2, None, None, {})
        await store.push(P, [job], "t")
        proxy.cut()
        with pytest.raises(errors.StorageUnavailable):
            await store.push(P, [job], "t")
        with pytest.raises(errors.StorageUnavailable):
            await store.state_counts(P)
        proxy.restore()
        deadline = time.monotonic() + 30
        while True:
            try:
                counts = await store.state_counts(P)
                break
            except errors.StorageUnavailable:
                assert time.monotonic() < deadline, "did not recover"
                await __import__("asyncio").sleep(0.2)
        assert counts == {State.PENDING: 1}
        await store.push(P, [job], "t")
        assert (await store.state_counts(P)) == {State.PENDING: 2}
    finally:
        await store.close()


def test_read_only_database_answers_503_then_recovers(pg_url: str, tmp_path: Path) -> None:
    name = pg_url.rpartition("/")[2]

    def set_read_only(on: bool) -> None:
        with psycopg.connect(helpers.PG_BASE_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
                         + ("on" if on else "off"))
            # sessions take the setting when they start: end the server's ones
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    server = helpers.Server(db=pg_url, log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            assert client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}').status_code == 200
            set_read_only(True)
            refused = None
            for _ in range(3):  # the first request may meet a terminated connection
                refused = client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}')
                if "read-only" in refused.text:
                    break
            assert refused is not None and refused.status_code == 503, refused.text
            assert "read-only" in refused.text
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 1
            set_read_only(False)
            deadline = time.monotonic() + 15
            while True:
                again = client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}')
                if again.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert again.status_code == 200, again.text
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 2
    finally:
        server.stop()
