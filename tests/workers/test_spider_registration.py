"""A worker registers the spiders it can run; scheduling then refuses any other spider
(real `jobq serve` processes on both backends, httpx)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, jobq_command

A, B = 53, 54


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    started = Server(db=db_url, log=tmp_path / "server.log").start()
    yield started
    started.stop()


def _project_key(server: Server, project: int) -> tuple[str, str]:
    secret = subprocess.run(
        [*jobq_command(), "keys", "create", "--project", str(project), "--db", server.db],
        check=True, capture_output=True, text=True).stdout.strip()
    return secret, ""


def test_registered_spiders_are_the_ones_scheduling_accepts(server: Server) -> None:
    key = _project_key(server, A)
    with httpx.Client(base_url=server.url, auth=key, timeout=10) as http:
        # before any worker registered spiders, any spider may be scheduled
        assert http.post("/api/run.json", data={"project": A, "spider": "early"}).status_code \
            == 200
        worker = http.post("/workers", json={"name": "w", "projects": [A]}).json()["id"]
        done = http.post(f"/workers/{worker}/spiders", json={"spiders": ["books", "prices"]})
        assert done.status_code == 200, done.text
        assert done.json() == {"id": worker, "spiders": ["books", "prices"]}
        refused = http.post("/api/run.json", data={"project": A, "spider": "nosuch"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["status"] == "error" and "nosuch" in refused.json()["message"]
        assert http.post("/api/run.json", data={"project": A, "spider": "books"}).json()[
            "status"] == "ok"
        listed = http.get("/api/spiders/list.json", params={"project": A}).json()
        assert {"books", "prices"} <= {s["id"] for s in listed["spiders"]}
        # the names got spider ids
        assert http.get(f"/ids/{A}/spider/prices").json() is not None
        # a new list replaces the worker's old one
        again = http.post(f"/workers/{worker}/spiders", json={"spiders": ["prices"]})
        assert again.status_code == 200
        late = http.post("/api/run.json", data={"project": A, "spider": "books"})
        assert late.status_code == 400, late.text


@pytest.mark.parametrize("body, message", [
    ({"spiders": "books"}, "spiders: expected a list"),
    ({"spiders": [""]}, "spiders[0]"),
    ({"spiders": ["a\x00b"]}, "spiders[0]: contains a NUL"),
    ({"names": []}, "unknown field 'names'"),
    ([], "expected a JSON object"),
])
def test_bad_spider_lists_are_refused_and_change_nothing(
    server: Server, body: object, message: str
) -> None:
    with httpx.Client(base_url=server.url, auth=(server.admin_key, ""), timeout=10) as http:
        worker = http.post("/workers", json={"name": "w", "projects": [A]}).json()["id"]
        answer = http.post(f"/workers/{worker}/spiders", json=body)
        assert answer.status_code == 400, answer.text
        assert message in answer.text
        # nothing registered: any spider may still be scheduled
        assert http.post("/api/run.json", data={"project": A, "spider": "any"}).status_code \
            == 200


def test_only_the_registering_key_or_an_admin_registers_spiders(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        worker = http.post("/workers", json={"name": "w", "projects": [A]},
                           auth=_project_key(server, A)).json()["id"]
        other = http.post(f"/workers/{worker}/spiders", json={"spiders": ["x"]},
                          auth=_project_key(server, B))
        assert other.status_code == 403, other.text
        assert http.post(f"/workers/{worker}/spiders", json={"spiders": ["x"]}).status_code \
            == 401
        unknown = http.post("/workers/0123456789abcdef/spiders", json={"spiders": ["x"]},
                            auth=(server.admin_key, ""))
        assert unknown.status_code == 404
        assert http.post("/api/run.json", data={"project": A, "spider": "y"},
                         auth=(server.admin_key, "")).status_code == 200


@pytest.mark.parametrize("project", [10**18, 2**63 - 1, 0, True])
def test_a_project_id_outside_the_key_range_is_refused(server: Server, project: object) -> None:
    # project ids are the 18-digit ids of job keys: a worker registered for a larger one
    # would list a project no job key, path or OpenAPI schema can name
    with httpx.Client(base_url=server.url, auth=(server.admin_key, ""), timeout=10) as http:
        answer = http.post("/workers", json={"name": "w", "projects": [project]})
        assert answer.status_code == 400, answer.text
        assert "projects: expected a list of project ids" in answer.text
        assert http.get("/api/scrapyd/listprojects.json").json()["projects"] == []
