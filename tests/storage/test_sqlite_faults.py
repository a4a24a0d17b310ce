"""Permanent SQLite faults are told apart from "unavailable, retry": a damaged file
answers 500 naming the file, a dead writer thread fails writes at once, and /readyz
answers 503 with the reason. Files are private to their owner."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from jobq.config import Settings
from jobq.storage.sqlite import SqliteStorage
from tests import helpers

P = 61


def _push(client: httpx.Client, n: int, pad: int = 0) -> httpx.Response:
    body = b"\n".join(orjson.dumps({"spider": "s", "pad": "x" * pad}) for _ in range(n))
    return client.post(f"/jobq/{P}/push", content=body)


def _overwrite_pages(path: Path, table: str) -> list[int]:
    """Fill the root page of `table` and of its indexes with garbage, as a failing disk
    would; returns the page numbers."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        pages = [r[0] for r in conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0", (table,))]
    finally:
        conn.close()
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(bytes([0xA5]) * page_size)
    return pages


@pytest.mark.parametrize("found_by", ["read", "write"])
def test_damaged_file_is_a_permanent_error_and_readyz_says_so(tmp_path: Path,
                                                              found_by: str) -> None:
    path = tmp_path / "jobq.sqlite3"
    server = helpers.Server(db=f"sqlite:///{path}", log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            assert _push(client, 300, pad=500).status_code == 200
    finally:
        server.stop()
    assert _overwrite_pages(path, "jobs")
    server.start()
    try:
        with server.client() as client:
            assert client.get("/readyz").status_code == 200, "nothing read the damage yet"
            if found_by == "read":
                listed = client.get(f"/jobq/{P}/list", params={"state": "pending"})
            else:  # the writer thread finds it
                listed = _push(client, 1)
            assert listed.status_code == 500, listed.text
            assert f"{path} is damaged" in listed.text and "restore it from a backup" \
                in listed.text, listed.text
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert f"{path} is damaged" in ready.text
            assert "Retry-After" not in ready.headers
    finally:
        server.stop()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_dead_writer_fails_writes_at_once_and_readyz_says_so(tmp_path: Path) -> None:
    """The app in this process (to reach the fault hook), on a real file."""
    from jobq.http.app import create_app

    path = tmp_path / "jobq.sqlite3"
    storage = SqliteStorage(path)
    app = create_app(Settings(db=f"sqlite:///{path}", admin_keys=("k",)), storage)
    transport = httpx.ASGITransport(app=app)
    async with helpers.asgi_lifespan(app), httpx.AsyncClient(
        transport=transport, base_url="http://jobq", auth=("k", "")
    ) as client:
        body = b'{"spider":"s"}'
        assert (await client.post(f"/jobq/{P}/push", content=body)).status_code == 200
        storage._writer.break_connection()  # the fault hook: the writer's file is gone
        started = time.monotonic()
        failed = await client.post(f"/jobq/{P}/push", content=body)
        assert failed.status_code == 500, failed.text
        assert "writer" in failed.text and "restart jobq" in failed.text
        again = await client.post(f"/jobq/{P}/push", content=body)
        assert again.status_code == 500 and "restart jobq" in again.text
        assert time.monotonic() - started < 10
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "restart jobq" in ready.text
        # reads go on: the acknowledged job is there
        counted = await client.get(f"/jobq/{P}/count", params={"state": "pending"})
        assert counted.json() == 1


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_directory_database_and_backups_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    path = folder / "jobq.sqlite3"
    server = helpers.Server(db=f"sqlite:///{path}", log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            assert _push(client, 5).status_code == 200
            assert _mode(folder) == 0o700
            files = {p.name: _mode(p) for p in folder.iterdir()}
            assert files == {"jobq.sqlite3": 0o600, "jobq.sqlite3-wal": 0o600,
                             "jobq.sqlite3-shm": 0o600}, files
            copy = tmp_path / "backup.sqlite3"
            subprocess.run([*helpers.jobq_command(), "backup", "--db", server.db, str(copy)],
                           check=True, capture_output=True, timeout=60)
            assert _mode(copy) == 0o600
            again = subprocess.run(
                [*helpers.jobq_command(), "backup", "--db", server.db, str(copy)],
                capture_output=True, text=True, timeout=60)
            assert again.returncode == 1 and "exists" in again.stderr, again.stderr
            nowhere = tmp_path / "missing" / "copy.sqlite3"
            again = subprocess.run(
                [*helpers.jobq_command(), "backup", "--db", server.db, str(nowhere)],
                capture_output=True, text=True, timeout=60)
            assert again.returncode == 1 and "cannot create" in again.stderr, again.stderr
    finally:
        server.stop()


@pytest.mark.timeout(60)
def test_a_closed_event_loop_does_not_kill_the_writer(tmp_path: Path) -> None:
    """A caller whose event loop closed while its write ran (an abandoned request of a
    loop that is gone) must not take the writer thread down with it."""
    import asyncio
    import threading

    store = SqliteStorage(tmp_path / "jobq.sqlite3")
    running, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        running.set()
        release.wait(10)
        return 1

    async def abandon() -> None:
        await store.open()
        pending = asyncio.ensure_future(store._write(slow))
        assert await asyncio.to_thread(running.wait, 10)
        assert not pending.done()
        # leaving asyncio.run cancels the write and closes this loop

    asyncio.run(abandon())
    release.set()

    async def write_again() -> None:
        try:
            await asyncio.wait_for(store.set_max_running("g", 1), 10)
            await store.ping()
        finally:
            await store.close()

    asyncio.run(write_again())
