"""Acceptance fixtures: one real `jobq serve` per test module and backend, shared by the
module's tests. Each test works in a project of its own (`project`), so tests stay
independent while paying the server start only once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

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
    with helpers.running_server(request.param,
                                tmp_path_factory.mktemp(f"server-{request.param}")) as srv:
        yield srv


@pytest.fixture
def project() -> int:
    """A project id no other test uses."""
    return next(_project_ids)


@pytest.fixture
def http(shared_server: helpers.Server) -> Iterator[httpx.Client]:
    """httpx with the admin key, against the shared server."""
    with shared_server.client() as client:
        yield client
