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
FILTERED = {"/projects/jobsummaries", "/api/scrapyd/listprojects.json", "/api/v2/users/me"}
#: routes outside any project: admin keys only
ADMIN_ONLY = {"/botgroups/{name}/max_running", "/botgroups/{name}"}
#: workers: admin keys, or the key that registered the worker (here the admin key)
ADMIN_ONLY |= {"/workers", "/workers/{worker_id}/heartbeat", "/workers/{worker_id}/spiders",
               "/workers/{worker_id}"}


#: remove what they name: walked last, so that every other call still finds its job and
#: its schedule and its worker
LAST = {("DELETE", "/jobs/{pid}/{sid}/{jobno}"), ("DELETE", "/schedules/{pid}/{id}"),
        ("DELETE", "/workers/{worker_id}")}
#: ends the job token's job, and so the token: the very last call
REMOVE_JOB = ("DELETE", "/jobs/{pid}/{sid}/{jobno}")
#: what jobs produce: only a running job takes records (or any job, from an admin)
DATA = ("/items/", "/logs/", "/requests/")


def _calls() -> list[tuple[str, str, int]]:
    """(method, path, the status of a call that is allowed) of every route, in the table's
    order, but the cancels (which end the jobs they name) and then the removals last, so
    that the job-data writes before them find their jobs running."""
    calls = [(route.method, route.path, int(min(c for c in route.answers if c[0] == "2")))
             for route in ROUTES]
    return sorted(calls, key=lambda call: (call[:2] == REMOVE_JOB, call[:2] in LAST,
                                           call[1].endswith("/cancel")))


CALLS = _calls()


def _url(path: str, project: int, spider: int = 1, job: int = 1,
         schedules: dict[int, int] | None = None) -> str:
    url = (path.replace("{pid}", str(project)).replace("{sid}", str(spider))
           .replace("{jobno}", str(job)).replace("{field}", "note")
           .replace("{state}", "pending").replace("{name}", "g1").replace("{index}", "0"))
    if "{id}" in url:  # the project's schedule (a schedule id is unique in the database)
        url = url.replace("{id}", str((schedules or {}).get(project, 10**9)))
    # the app API names the project in its form (query or body), not in the path
    return url + f"?project={project}" if path.startswith("/api/") and "{pid}" not in path \
        else url


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
    if path.endswith("/spiders") and path.startswith("/workers/"):
        return b'{"spiders": ["s1"]}'
    if path.endswith("/tags"):
        return b'{"add": ["t1"]}'
    if path.startswith("/api/"):  # a form; each route runs its own spider (no duplicate)
        return f"spider=s1&job={key}&add_tag=t1&from={path}".encode()
    if path == "/schedules/{pid}":
        return b'{"spider": "s1", "every": "1h"}'
    if path.startswith("/schedules/"):
        return b'{"description": "changed"}'
    if "{field}" in path or "{name}" in path:
        return b'"v"'
    return orjson.dumps({"spider": "s1", "note": 1})


@pytest.fixture
def world(server: Server) -> dict[str, tuple[str, str]]:
    """Jobs 1/1, 1/2 and 1/3 in both projects, each with a `note`, a record of each kind of
    job data, and a `g1` setting (so that every allowed call succeeds), job A/1/1 running,
    and each kind of credential."""
    with server.client() as client:
        for project in (A, B):
            for job in range(1, 4):
                assert client.post(f"/jobq/{project}/push",
                                   content=b'{"spider":"s1","note":0}').status_code == 200
                for data in DATA:  # an admin may write to a pending job
                    assert client.post(f"{data}{project}/1/{job}",
                                       content=b'{"r":0}').status_code == 200
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


@pytest.fixture
def schedule_ids(server: Server) -> dict[int, int]:
    """A schedule in each project, by project."""
    ids = {}
    with server.client() as client:
        for project in (A, B):
            made = client.post(f"/schedules/{project}", json={"spider": "s1", "every": "1h"})
            assert made.status_code == 201, made.text
            ids[project] = made.json()["schedule"]["id"]
    return ids


def _call(server: Server, auth: tuple[str, str] | None, method: str, url: str,
          body: bytes) -> httpx.Response:
    content = body if method in ("POST", "PATCH") else None
    with httpx.Client(base_url=server.url, timeout=10) as client:
        if auth is None:
            return client.request(method, url, content=content)
        return client.request(method, url, content=content, auth=auth)


def test_every_route_with_every_credential(
    server: Server, world: dict[str, tuple[str, str]], schedule_ids: dict[int, int]
) -> None:
    """Each call answers exactly what its caller may: 200 when allowed (every body is
    valid and every named job, field and setting exists, so "allowed" cannot hide behind
    a 400 or 404), 403 when not, 401 without credentials."""
    failures = []
    ids = schedule_ids
    for method, route, allowed in CALLS:
        path = route.replace("{worker_id}", world["worker"][0])
        expectations = [
            ("none", None, _url(path, B, schedules=ids), f"{B}/1/1",
             200 if path in OPEN else 401),
            ("project key on B", world["project"], _url(path, B, schedules=ids), f"{B}/1/1",
             allowed if path in OPEN | FILTERED else 403),
            ("job token on another job", world["job"], _url(path, A, 1, 2, ids), f"{A}/1/2",
             allowed if path in OPEN | FILTERED else 403),
            ("admin on B", world["admin"], _url(path, B, schedules=ids), f"{B}/1/1", allowed),
        ]
        if route not in ADMIN_ONLY:
            # job 3, not the token's job 1: removing it must not end the token early; but
            # job data takes the running job 1 (which no call removes before the end)
            job = 1 if path.startswith(DATA) else 3
            expectations.append(("project key on A", world["project"],
                                 _url(path, A, 1, job, ids), f"{A}/1/{job}", allowed))
        if path.startswith(("/jobs/", *DATA)):
            expectations.append(
                ("job token on its job", world["job"], _url(path, A, 1, 1, ids), f"{A}/1/1",
                 allowed)
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
