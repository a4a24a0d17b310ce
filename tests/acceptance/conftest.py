"""Acceptance fixtures: one real `jobq serve` per test module and backend, shared by the
module's tests. Each test works in a project of its own (`project`), so tests stay
independent while paying the server start only once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import helpers

BACKENDS = ["sqlite", "postgres"]

_project_ids = itertools.count(100)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[helpers.Server]:
    """A `jobq serve` on a fresh database of each backend, for a whole module."""
    tmp: Path = tmp_path_factory.mktemp(f"server-{request.param}")
    pg_url = None
    if request.param == "sqlite":
        db = f"sqlite:///{tmp / 'jobq.sqlite3'}"
    else:
        why = helpers.pg_available()
        if why is not None:
            message = f"PostgreSQL unreachable at {helpers.PG_BASE_URL}: {why}"
            if helpers.IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        db = pg_url = helpers.create_pg_database()
    srv = helpers.Server(db=db, log=tmp / "server.log").start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg_url is not None:
            helpers.drop_pg_database(pg_url)


@pytest.fixture
def project() -> int:
    """A project id no other test uses."""
    return next(_project_ids)


@pytest.fixture
def http(shared_server: helpers.Server) -> Iterator[httpx.Client]:
    """httpx with the admin key, against the shared server."""
    with shared_server.client() as client:
        yield client
