"""Job-data fixtures: one real `jobq serve` per module and backend (its janitor runs
often, so retention and deletion show within a second), each test in its own project."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest
from scrapinghub import HubstorageClient, ScrapinghubClient

from tests import helpers

_project_ids = itertools.count(300)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def data_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[helpers.Server]:
    with helpers.running_server(request.param, tmp_path_factory.mktemp(f"jd-{request.param}"),
                                ["--data-janitor-seconds", "0.2"]) as srv:
        yield srv


@pytest.fixture
def project() -> int:
    return next(_project_ids)


@pytest.fixture
def http(data_server: helpers.Server) -> Iterator[httpx.Client]:
    with data_server.client() as client:
        yield client


@pytest.fixture
def hs(data_server: helpers.Server) -> Iterator[HubstorageClient]:
    client = HubstorageClient(auth=data_server.admin_key, endpoint=data_server.url)
    yield client
    client.close()


@pytest.fixture
def sc(data_server: helpers.Server) -> Iterator[ScrapinghubClient]:
    client = ScrapinghubClient(data_server.admin_key, endpoint=data_server.url)
    yield client
    client.close()


def running_job(http: httpx.Client, project: int, spider: str = "spider") -> tuple[str, str]:
    """A job pushed running: its key and job token."""
    answer = http.post(f"/jobq/{project}/push", json={"spider": spider, "state": "running"})
    assert answer.status_code == 200, answer.text
    row = answer.json()
    return row["key"], row["auth"]


def finish(http: httpx.Client, project: int, key: str) -> None:
    answer = http.post(f"/jobq/{project}/update", json={"key": key, "state": "finished"})
    assert answer.status_code == 200, answer.text
