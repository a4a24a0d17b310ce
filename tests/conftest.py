"""Fixtures: every backend is real (SQLite files, the machine's PostgreSQL) and every
server is a real `jobq serve` process.

`backend` is parametrised over sqlite and postgres. Without PostgreSQL the postgres cases
skip, except under CI=true, where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import helpers

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOBQ_") and name != "JOBQ_TEST_PG_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with helpers.fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database of the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'jobq.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[object]:
    from jobq.storage import open_storage

    store = open_storage(db_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[helpers.Server]:
    srv = helpers.Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

