"""Walk every route with each kind of credential: a project key reaches its project only,
a job token its job only, an admin key everything; no credentials get 401."""

from __future__ import annotations

import subprocess

import httpx
import orjson
import pytest

from jobq.http.table import ROUTES
from tests.helpers import Server, jobq_command

A, B = 53, 54
#: routes anyone may call
OPEN = {"/system/ts", "/healthz", "/readyz", "/metrics", "/openapi.json"}
#: routes that answer each caller with what it may see, rather than 403
FILTERED = {"/projects/jobsummaries"}
#: routes outside any project: admin keys only
ADMIN_ONLY = {"/botgroups/{name}/max_running", "/botgroups/{name}"}
#: workers: admin keys, or the key that registered the worker (here the admin key)
ADMIN_ONLY |= {"/workers", "/workers/{worker_id}/heartbeat", "/workers/{worker_id}"}


#: remove what they name: walked last, so that every other call still finds its job and
#: its worker
REMOVING = {("DELETE", "/jobs/{pid}/{sid}/{jobno}"), ("DELETE", "/workers/{worker_id}")}


def _calls() -> list[tuple[str, str]]:
    calls = [(route.method, route.path) for route in ROUTES]
    return sorted(calls, key=lambda call: call in REMOVING)


CALLS = _calls()


def _url(path: str, project: int, spider: int = 1, job: int = 1) -> str:
    return (path.replace("{pid}", str(project)).replace("{sid}", str(spider))
            .replace("{jobno}", str(job)).replace("{field}", "note")
            .replace("{state}", "pending").replace("{name}", "g1"))


def _body(path: str, key: str) -> bytes:
    """A valid body for the call, about job `key`."""
    if path.endswith("/cancel"):
        return orjson.dumps([{"key": key}]) if "{jobno}" not in path else b""
    if path.endswith("/update"):
        return orjson.dumps({"key": key, "note": 1})
    if path.endswith("/max_running"):
        return b"3"
    if path == "/workers":  # for the project of `key`: only its own key may register there
        return orjson.dumps({"name": "w2", "projects": [int(key.split("/")[0])]})
    if path.endswith("/heartbeat"):
        return b'{"jobs": []}'
    if "{field}" in path or "{name}" in path:
        return b'"v"'
    return orjson.dumps({"spider": "s1", "note": 1})


@pytest.fixture
def world(server: Server) -> dict[str, tuple[str, str]]:
    """Jobs 1/1, 1/2 and 1/3 in both projects, each with a `note` and a `g1` setting (so
    that every allowed call succeeds), job A/1/1 running, and each kind of credential."""
    with server.client() as client:
        for project in (A, B):
            for _ in range(3):
                assert client.post(f"/jobq/{project}/push",
                                   content=b'{"spider":"s1","note":0}').status_code == 200
            assert client.post(f"/projects/{project}/settings",
                               content=b'{"g1":"v"}').status_code == 200
        started = client.post(f"/jobq/{A}/startjob").json()
        assert started["key"] == f"{A}/1/1"
        worker = client.post("/workers", json={"name": "w", "projects": [A]}).json()["id"]
    project_key = subprocess.run(
        [*jobq_command(), "keys", "create", "--project", str(A), "--db", server.db],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    return {
        "admin": (server.admin_key, ""),
        "project": (project_key, ""),
        "job": (started["key"], started["auth"]),
        "worker": (worker, ""),
    }


def _call(server: Server, auth: tuple[str, str] | None, method: str, url: str,
          body: bytes) -> httpx.Response:
    content = body if method == "POST" else None
    with httpx.Client(base_url=server.url, timeout=10) as client:
        if auth is None:
            return client.request(method, url, content=content)
        return client.request(method, url, content=content, auth=auth)


def test_every_route_with_every_credential(
    server: Server, world: dict[str, tuple[str, str]]
) -> None:
    """Each call answers exactly what its caller may: 200 when allowed (every body is
    valid and every named job, field and setting exists, so "allowed" cannot hide behind
    a 400 or 404), 403 when not, 401 without credentials."""
    failures = []
    for method, route in CALLS:
        path = route.replace("{worker_id}", world["worker"][0])
        allowed = 200
        expectations = [
            ("none", None, _url(path, B), f"{B}/1/1", 200 if path in OPEN else 401),
            ("project key on B", world["project"], _url(path, B), f"{B}/1/1",
             allowed if path in OPEN | FILTERED else 403),
            ("job token on another job", world["job"], _url(path, A, 1, 2), f"{A}/1/2",
             allowed if path in OPEN | FILTERED else 403),
            ("admin on B", world["admin"], _url(path, B), f"{B}/1/1", allowed),
        ]
        if route not in ADMIN_ONLY:
            # job 3, not the token's job 1: removing it must not end the token early
            expectations.append(
                ("project key on A", world["project"], _url(path, A, 1, 3), f"{A}/1/3", allowed)
            )
        if path.startswith("/jobs/"):
            expectations.append(
                ("job token on its job", world["job"], _url(path, A, 1, 1), f"{A}/1/1", allowed)
            )
        for who, auth, url, body_key, expected in expectations:
            status = _call(server, auth, method, url, _body(path, body_key)).status_code
            if status != expected:
                failures.append(f"{who}: {method} {url} -> {status} (expected {expected})")
    assert not failures, "\n".join(failures)


def test_a_job_token_cannot_touch_its_project(
    server: Server, world: dict[str, tuple[str, str]]
) -> None:
    token = world["job"]
    for method, url in [("GET", f"/jobq/{A}/list"), ("POST", f"/jobq/{A}/push"),
                        ("POST", f"/jobq/{A}/startjob"), ("GET", f"/projects/{A}/settings")]:
        status = _call(server, token, method, url, b'{"spider":"s1"}').status_code
        assert status == 403, (method, url, status)
    own = _call(server, token, "POST", f"/jobq/{A}/update",
                orjson.dumps({"key": token[0], "state": "finished"}))
    assert own.status_code == 200 and orjson.loads(own.content)["prevstate"] == "running"
