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


def _require_postgres() -> None:
    why = helpers.pg_available()
    if why is None:
        return
    message = f"PostgreSQL unreachable at {helpers.PG_BASE_URL}: {why}"
    if helpers.IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    _require_postgres()
    url = helpers.create_pg_database()
    try:
        yield url
    finally:
        helpers.drop_pg_database(url)


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

