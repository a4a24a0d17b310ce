"""The app API's job calls under /api/, through the official `scrapinghub` client (2.9.0)
and `shub` (2.18.1) from PyPI, unchanged but for their endpoints, against real
`jobq serve` processes on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scrapinghub import Connection, ScrapinghubClient
from scrapinghub.client import exceptions as sh_errors

from tests import helpers
from tests.scheduling.conftest import in_storage


@pytest.fixture
def sc(shared_server: helpers.Server) -> Iterator[ScrapinghubClient]:
    client = ScrapinghubClient(shared_server.admin_key, dash_endpoint=shared_server.url + "/api/",
                               endpoint=shared_server.url + "/")
    yield client
    client._hsclient.session.close()
    client._connection._session.close()


@pytest.fixture
def legacy(shared_server: helpers.Server) -> Iterator[Connection]:
    conn = Connection(shared_server.admin_key, url=shared_server.url + "/api/")
    yield conn
    conn._session.close()


def project_key(server: helpers.Server, project: int) -> str:
    made = subprocess.run(
        [*helpers.jobq_command(), "keys", "create", "--db", server.db, "--project", str(project)],
        capture_output=True, text=True, check=True,
    )
    return made.stdout.strip()


def count_jobs(http: httpx.Client, project: int) -> int:
    found = http.get(f"/jobq/{project}/count",
                     params={"state": ["pending", "running", "finished"]})
    assert found.status_code == 200, found.text
    return int(found.json())


def test_run_with_every_field(sc: ScrapinghubClient, project: int) -> None:
    job = sc.get_project(project).jobs.run(
        "books", job_args={"category": "fiction", "pages": "3"}, add_tag=["nightly", "fr"],
        priority=3, units=2, job_settings={"LOG_LEVEL": "INFO", "CONCURRENT_REQUESTS": 4},
        meta={"note": "from a test"}, environment={"PROXY": "none"}, cmd_args='-v "a b"',
    )
    meta = dict(job.metadata.list())
    assert job.key.startswith(f"{project}/")
    assert meta["state"] == "pending"
    assert meta["spider"] == "books"
    assert meta["spider_args"] == {"category": "fiction", "pages": "3"}
    assert meta["tags"] == ["nightly", "fr"]
    assert (meta["priority"], meta["units"]) == (3, 2)
    assert meta["job_settings"] == {"LOG_LEVEL": "INFO", "CONCURRENT_REQUESTS": 4}
    assert meta["environment"] == {"PROXY": "none"}
    assert meta["job_cmd"] == ["books", "-v", "a b"]
    assert meta["note"] == "from a test"
    assert meta["scheduled_by"] == "admin"


def test_run_as_running_and_defaults(sc: ScrapinghubClient, project: int) -> None:
    jobs = sc.get_project(project).jobs
    running = jobs.run("books", meta={"state": "running"})
    assert running.metadata.get("state") == "running"
    assert running.metadata.get("started_by") == "admin"
    tagged = jobs.run("poets", meta={"tags": ["from-meta"]}, add_tag=["added"])
    assert tagged.metadata.get("tags") == ["from-meta", "added"]
    plain = jobs.run("authors")
    meta = dict(plain.metadata.list())
    assert (meta["priority"], meta["units"]) == (2, 1)
    assert "spider_args" not in meta and "tags" not in meta


def test_duplicates_refused_while_active(sc: ScrapinghubClient, project: int,
                                         http: httpx.Client) -> None:
    jobs = sc.get_project(project).jobs
    first = jobs.run("books", job_args={"category": "fiction"})
    with pytest.raises(sh_errors.DuplicateJobError, match="books already scheduled"):
        jobs.run("books", job_args={"category": "fiction"})
    other = jobs.run("books", job_args={"category": "poetry"})  # other arguments: fine
    assert other.key != first.key
    assert count_jobs(http, project) == 2
    first.finish()  # no longer active: the same run is accepted again
    again = jobs.run("books", job_args={"category": "fiction"})
    assert again.key not in (first.key, other.key)


def test_tags_of_jobs(sc: ScrapinghubClient, project: int) -> None:
    proj = sc.get_project(project)
    one = proj.jobs.run("books", add_tag=["a", "b"])
    two = proj.jobs.run("books", job_args={"x": "1"})
    one.update_tags(add=["c"], remove=["a"])
    assert one.metadata.get("tags") == ["b", "c"]
    assert proj.jobs.update_tags(spider="books", add=["seen"]) == 2
    assert one.metadata.get("tags") == ["b", "c", "seen"]
    assert two.metadata.get("tags") == ["seen"]


def test_stop_delete_list_through_the_legacy_client(
    sc: ScrapinghubClient, legacy: Connection, project: int
) -> None:
    proj = sc.get_project(project)
    keys = [proj.jobs.run("books", job_args={"n": str(i)}, add_tag=["t"]).key for i in range(3)]
    listed = list(legacy[project].jobs())
    assert sorted(j.id for j in listed) == sorted(keys)
    row = listed[0].info
    assert {"id", "spider", "state", "close_reason", "items_scraped", "responses_received",
            "errors_count", "logs", "elapsed", "started_time", "updated_time", "priority",
            "tags", "version", "spider_type"} <= set(row)
    assert row["spider"] == "books" and row["tags"] == ["t"]
    assert legacy[project].jobs(state="pending").count() == 3
    legacy[project].job(keys[0]).stop()
    stopped = proj.jobs.get(keys[0]).metadata
    assert (stopped.get("state"), stopped.get("close_reason")) == ("finished", "cancelled")
    legacy[project].job(keys[1]).delete()
    assert proj.jobs.get(keys[1]).metadata.get("state") == "deleted"
    assert sorted(j.id for j in legacy[project].jobs()) == sorted([keys[0], keys[2]])


def test_list_json_answer(http: httpx.Client, sc: ScrapinghubClient, project: int) -> None:
    key = sc.get_project(project).jobs.run("books", add_tag=["x"]).key
    found = http.get("/api/jobs/list.json", params={"project": project, "has_tag": "x"})
    body = found.json()
    assert found.status_code == 200 and body["status"] == "ok"
    assert (body["count"], body["total"]) == (1, 1)
    assert body["jobs"][0]["id"] == key


def test_spiders_and_spider_tags(sc: ScrapinghubClient, project: int) -> None:
    proj = sc.get_project(project)
    proj.jobs.run("books")
    proj.jobs.run("authors")
    spider = proj.spiders.get("books")
    spider.update_tags(add=["daily", "fr"])
    spider.update_tags(remove=["fr"])
    assert spider.list_tags() == ["daily"]
    listed = {s["id"]: s for s in proj.spiders.list()}
    assert set(listed) == {"books", "authors"}
    assert listed["books"] == {"id": "books", "type": "manual", "version": None,
                               "tags": ["daily"]}


def test_spider_tags_empty_body_is_400(http: httpx.Client, sc: ScrapinghubClient,
                                       project: int) -> None:
    sc.get_project(project).jobs.run("books")
    sid = sc.get_project(project).spiders.get("books")._id
    for body in (b"", b"{}"):
        answer = http.patch(f"/api/v2/projects/{project}/spiders/{sid}/tags", content=body)
        assert answer.status_code == 400
        assert answer.json()["status"] == "error"
    assert http.patch(f"/api/v2/projects/{project}/spiders/999/tags",
                      json={"add": ["x"]}).status_code == 404


def test_projects(sc: ScrapinghubClient, shared_server: helpers.Server, project: int) -> None:
    sc.get_project(project).jobs.run("books")
    assert project in sc.projects.list()
    key = project_key(shared_server, project + 1000)
    own = ScrapinghubClient(key, dash_endpoint=shared_server.url + "/api/",
                            endpoint=shared_server.url + "/")
    assert own.projects.list() == [project + 1000]


@pytest.mark.parametrize(("fields", "named"), [
    ({"priority": "9"}, "priority"),
    ({"priority": "high"}, "priority"),
    ({"units": "0"}, "units"),
    ({"job_settings": "[1, 2]"}, "job_settings"),
    ({"job_settings": "{not json"}, "job_settings"),
    ({"meta": "3"}, "meta"),
    ({"environment": "[]"}, "environment"),
    ({"spider": ""}, "spider"),
    ({"cmd_args": 'unclosed "quote'}, "cmd_args"),
    ({"meta": '{"tags": "abc"}', "add_tag": "x"}, "meta: tags"),
])
def test_bad_run_is_400_naming_the_field(http: httpx.Client, project: int,
                                         fields: dict[str, str], named: str) -> None:
    form = {"project": str(project), "spider": "books", **fields}
    answer = http.post("/api/run.json", data=form)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["status"] == "error" and body["message"].startswith(named)
    assert count_jobs(http, project) == 0


def test_bad_input_through_the_client(sc: ScrapinghubClient, project: int,
                                      http: httpx.Client) -> None:
    with pytest.raises(sh_errors.BadRequest, match="priority"):
        sc.get_project(project).jobs.run("books", priority=7)
    with pytest.raises(sh_errors.BadRequest, match="job_settings"):
        sc.get_project(project).jobs.run("books", job_settings="LOG_LEVEL=INFO")
    assert count_jobs(http, project) == 0


def test_credentials_and_isolation(shared_server: helpers.Server, project: int,
                                   http: httpx.Client) -> None:
    bad = ScrapinghubClient("jq_not_a_key", dash_endpoint=shared_server.url + "/api/",
                            endpoint=shared_server.url + "/")
    with pytest.raises(sh_errors.Unauthorized):
        bad.get_project(project).jobs.run("books")
    other = project_key(shared_server, project + 2000)
    with httpx.Client(base_url=shared_server.url) as client:
        answer = client.post("/api/run.json", params={"apikey": other},
                             data={"project": project, "spider": "books"})
        assert answer.status_code == 403 and answer.json()["status"] == "error"
        mine = client.post("/api/run.json", params={"apikey": other},
                           data={"project": project + 2000, "spider": "books"})
        assert mine.status_code == 200 and mine.json()["jobid"].startswith(f"{project + 2000}/")
    assert count_jobs(http, project) == 0


def test_spiders_of_registered_workers(sc: ScrapinghubClient, shared_server: helpers.Server,
                                       project: int, http: httpx.Client) -> None:
    proj = sc.get_project(project)
    proj.jobs.run("anything")  # no worker registered spiders: any name goes

    async def register(storage: Any) -> None:
        await storage.register_spiders(project, "worker-1", ["books", "authors"])

    in_storage(shared_server.db, register)
    with pytest.raises(sh_errors.BadRequest, match="spider: 'ghost' is not a spider"):
        proj.jobs.run("ghost")
    assert proj.jobs.run("books").key
    names = {s["id"] for s in proj.spiders.list()}
    assert names == {"anything", "books", "authors"}
    assert count_jobs(http, project) == 2


def test_shub_login_accepts_jobq_keys(shared_server: helpers.Server, project: int) -> None:
    with warnings.catch_warnings():  # shub's import chain warns about distutils
        warnings.simplefilter("ignore")
        from shub.login import _is_valid_apikey

    endpoint = shared_server.url + "/api/"
    assert _is_valid_apikey(shared_server.admin_key, endpoint=endpoint)
    assert _is_valid_apikey(project_key(shared_server, project), endpoint=endpoint)
    assert not _is_valid_apikey("jq_wrong", endpoint=endpoint)


def _shub(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SH_", "SHUB_"))}
    env["HOME"] = str(workdir)
    shub = Path(sys.executable).parent / "shub"
    return subprocess.run([str(shub), *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=120)


def test_shub_schedule(shared_server: helpers.Server, project: int, tmp_path: Path,
                       sc: ScrapinghubClient) -> None:
    (tmp_path / "scrapinghub.yml").write_text(
        f"projects:\n  default: {project}\n"
        f"endpoints:\n  default: {shared_server.url}/api/\n"
        f"apikeys:\n  default: {shared_server.admin_key}\n"
    )
    done = _shub(tmp_path, "schedule", "books", "-a", "category=fiction", "-a", "pages=2",
                 "-s", "LOG_LEVEL=DEBUG", "-p", "4", "-u", "3", "-t", "nightly",
                 "-e", "TZ=UTC")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Spider books scheduled, job ID: {project}/" in done.stdout
    key = done.stdout.split("job ID: ", 1)[1].split()[0]
    meta = dict(sc.get_job(key).metadata.list())
    assert meta["spider_args"] == {"category": "fiction", "pages": "2"}
    assert meta["job_settings"] == {"LOG_LEVEL": "DEBUG"}
    assert (meta["priority"], meta["units"], meta["tags"]) == (4, 3, ["nightly"])
    assert meta["environment"] == {"TZ": "UTC"}
    again = _shub(tmp_path, "schedule", "books", "-a", "category=fiction", "-a", "pages=2")
    assert again.returncode != 0
    assert "already scheduled" in again.stdout + again.stderr


# -- the app API's answers through the route table's HTTP layer --------------------------


def app_error(answer: httpx.Response, status: int, starts: str) -> None:
    """`answer` is the app API's JSON error of `status`, its message starting so."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["status"] == "error" and body["message"].startswith(starts), body


def test_every_error_keeps_the_app_shape(shared_server: helpers.Server, project: int,
                                         http: httpx.Client) -> None:
    with httpx.Client(base_url=shared_server.url) as anonymous:
        refused = anonymous.post("/api/run.json", data={"project": project, "spider": "b"})
    app_error(refused, 401, "Authentication failed")
    assert refused.headers["www-authenticate"].startswith("Basic")
    with httpx.Client(base_url=shared_server.url, auth=("jq_not_a_key", "")) as bad:
        app_error(bad.get("/schedules/1"), 401, "Authentication failed")
    # the dispatcher's own refusals too: a required parameter, a body that is no form
    app_error(http.get("/api/jobs/list.json"), 400, "project: this parameter is required")
    app_error(http.get("/api/jobs/count.json", params={"project": ""}), 400, "project")
    app_error(http.post("/api/run.json", files={"spider": (None, "books")},
                        data={"project": str(project)}), 400, "body: send the form as")
    app_error(http.post("/api/run.json", content=b"project=1&spider=\xff",
                        headers={"content-type": "application/x-www-form-urlencoded"}),
              400, "body: a urlencoded form must be UTF-8")
    app_error(http.post(f"/schedules/{project}", content=b"{not json"), 400, "body: invalid")
    app_error(http.post(f"/schedules/{project}/x/run"), 400, "schedule id")
    assert count_jobs(http, project) == 0
    # JobQ routes keep their plain-text errors
    plain = http.get(f"/jobq/{project}/list", params={"bogus": "1"})
    assert plain.status_code == 400 and plain.text.startswith("unknown parameter(s): bogus")


def test_app_routes_take_any_query_parameter(http: httpx.Client, project: int) -> None:
    """As the hosted app API does: a form's fields may come in the query, and clients
    send parameters jobq has no use for."""
    run = http.post("/api/run.json", params={"project": project, "spider": "books",
                                             "category": "fiction"})
    assert run.status_code == 200, run.text
    meta = http.get(f"/jobs/{run.json()['jobid']}").json()
    assert meta["spider_args"] == {"category": "fiction"}
    for path in ("/api/scrapyd/listprojects.json", "/api/v2/users/me"):
        assert http.get(path, params={"project": project, "v": "2"}).status_code == 200


def test_methods(http: httpx.Client, project: int) -> None:
    wrong = http.get("/api/run.json", params={"project": project})
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    made = http.post(f"/schedules/{project}", json={"spider": "books", "every": "1h"})
    sid = made.json()["schedule"]["id"]
    wrong = http.put(f"/schedules/{project}/{sid}", json={})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST, PATCH, DELETE"
    head = http.head(f"/schedules/{project}/{sid}")
    assert head.status_code == 200 and head.content == b""
    # an empty body changes nothing (the body is optional), by PATCH as by POST
    for method in ("PATCH", "POST"):
        same = http.request(method, f"/schedules/{project}/{sid}")
        assert same.status_code == 200, same.text
        assert same.json()["schedule"]["every"] == "1h"
    changed = http.patch(f"/schedules/{project}/{sid}", json={"every": "2h"})
    assert changed.json()["schedule"]["every"] == "2h"
    assert http.delete(f"/schedules/{project}/{sid}").json() == {"status": "ok"}
    app_error(http.delete(f"/schedules/{project}/{sid}"), 404, "schedule")
