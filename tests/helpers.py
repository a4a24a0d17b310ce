"""Test helpers: real `jobq serve` processes and real databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

PG_BASE_URL = os.environ.get("JOBQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_admin_url(database: str) -> str:
    base, _, _ = PG_BASE_URL.rpartition("/")
    return f"{base}/{database}"


def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        with psycopg.connect(PG_BASE_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


def create_pg_database() -> str:
    """A new empty database; returns its URL."""
    name = f"jobq_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_admin_url(name)


def drop_pg_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def require_postgres() -> None:
    """Skip the test without PostgreSQL; under CI=true fail instead (CI must never pass
    by skipping the PostgreSQL cases)."""
    why = pg_available()
    if why is None:
        return
    message = f"PostgreSQL unreachable at {PG_BASE_URL}: {why}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new empty database of `backend` (a SQLite file in `folder`); a
    PostgreSQL database is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'jobq.sqlite3'}"
        return
    require_postgres()
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@contextlib.contextmanager
def running_server(backend: str, folder: Path, extra_args: Sequence[str] = ()) -> Iterator[Server]:
    """A started `jobq serve` on a fresh database of `backend`, stopped afterwards."""
    with fresh_database(backend, folder) as db:
        server = Server(db=db, log=folder / "server.log", extra_args=list(extra_args)).start()
        try:
            yield server
        finally:
            server.stop()


def jobq_command() -> list[str]:
    found = shutil.which("jobq", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "jobq"]


@dataclass
class Server:
    """A `jobq serve` subprocess."""

    db: str
    admin_key: str = "test-admin-key"
    port: int = field(default_factory=free_port)
    log: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
        env["JOBQ_ADMIN_KEY"] = self.admin_key
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [*jobq_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--db", self.db, "--log-level", "warning", *self.extra_args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jobq serve exited with {self.process.returncode}"
                                   f"{self._log_tail()}")
            try:
                if httpx.get(self.url + "/system/ts", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jobq serve did not answer within {timeout}s{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log and self.log.exists():
            return ":\n" + self.log.read_text(errors="replace")[-3000:]
        return ""

    def kill(self) -> None:
        """`kill -9`: no chance to flush or clean up."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(self.admin_key, ""), timeout=30, **kwargs)


@contextlib.asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan in this process (start-up before the block, shut-down
    after), as a server would: for tests that must reach into the app's storage."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await replies.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await replies.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await task
