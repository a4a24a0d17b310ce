"""Schedules over HTTP and through `jobq schedule`, against real `jobq serve` processes on
both backends; the server's own scheduler fires them."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from typing import Any

import httpx
import orjson
import pytest

from jobq.config import Settings
from jobq.core.schedules import POLL_SECONDS
from jobq.http.app import create_app
from jobq.storage import open_storage
from tests import helpers
from tests.scheduling.test_app_api import project_key


def cli(server: helpers.Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*helpers.jobq_command(), "schedule", *args, "--url", server.url,
         "--apikey", server.admin_key],
        capture_output=True, text=True, timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def schedules(http: httpx.Client, project: int) -> list[dict[str, Any]]:
    found = http.get(f"/schedules/{project}")
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["schedules"]
    return rows


def test_cli_add_list_pause_resume_run_now_rm(shared_server: helpers.Server, project: int,
                                             http: httpx.Client) -> None:
    added = cli(shared_server, "add", str(project), "books", "--cron", "0 3 * * *",
                "--tz", "Europe/Madrid", "-a", "category=fiction", "--tag", "nightly", "--json")
    made = orjson.loads(added.stdout)
    assert made["when"] == "cron 0 3 * * * Europe/Madrid"
    assert made["next_run"][11:19] == "03:00:00" and made["next_run"][19:] in ("+01:00",
                                                                               "+02:00")
    assert (made["args"], made["tags"]) == ({"category": "fiction"}, ["nightly"])
    cli(shared_server, "add", str(project), "authors", "--every", "6h")
    table = cli(shared_server, "list", str(project)).stdout.splitlines()
    assert table[0].split() == ["ID", "SPIDER", "WHEN", "NEXT_RUN", "LAST_JOB",
                                "LAST_OUTCOME", "PAUSED"]
    assert "cron 0 3 * * * Europe/Madrid" in table[1] and "every 6h" in table[2]
    sid = str(made["id"])
    assert "paused" in cli(shared_server, "pause", str(project), sid).stdout
    assert schedules(http, project)[0]["paused"] is True
    cli(shared_server, "resume", str(project), sid)
    assert schedules(http, project)[0]["paused"] is False
    key = cli(shared_server, "run-now", str(project), sid).stdout.strip()
    meta = http.get(f"/jobs/{key}").json()
    assert meta["scheduled_by"] == "periodicjobs" and meta["schedule"] == made["id"]
    assert meta["spider_args"] == {"category": "fiction"}
    again = cli(shared_server, "run-now", str(project), sid, check=False)
    assert again.returncode != 0 and "already scheduled" in again.stderr
    listed = cli(shared_server, "list", str(project), "--json").stdout.splitlines()
    assert orjson.loads(listed[0])["last_job"] == key
    cli(shared_server, "rm", str(project), sid)
    assert [s["spider"] for s in schedules(http, project)] == ["authors"]


def test_cli_refuses_bad_timetables(shared_server: helpers.Server, project: int,
                                    http: httpx.Client) -> None:
    for args, named in ((["--cron", "0 3 * *"], "cron"),
                        (["--cron", "0 3 * * *", "--tz", "Europe/Atlantis"], "tz"),
                        (["--every", "0.5s"], "every")):
        done = cli(shared_server, "add", str(project), "books", *args, check=False)
        assert done.returncode != 0 and f"400: {named}" in done.stderr, done.stderr
    assert schedules(http, project) == []


@pytest.mark.parametrize(("body", "named"), [
    ({"spider": "books", "cron": "every day"}, "cron"),
    ({"spider": "books", "cron": "0 3 * * *", "tz": "Local"}, "tz"),
    ({"spider": "books", "every": "999ms"}, "every"),
    ({"spider": "books", "every": "1h", "priority": 9}, "priority"),
    ({"spider": "books", "every": "1h", "job_settings": "x"}, "job_settings"),
])
def test_http_bad_input_is_400_and_creates_nothing(http: httpx.Client, project: int,
                                                   body: dict[str, Any], named: str) -> None:
    answer = http.post(f"/schedules/{project}", json=body)
    assert answer.status_code == 400
    assert answer.json()["status"] == "error"
    assert answer.json()["message"].startswith(named)
    assert schedules(http, project) == []


def test_http_isolation(shared_server: helpers.Server, http: httpx.Client,
                        project: int) -> None:
    made = http.post(f"/schedules/{project}", json={"spider": "books", "every": "1h"})
    assert made.status_code == 201
    sid = made.json()["schedule"]["id"]
    other = project_key(shared_server, project + 3000)
    with httpx.Client(base_url=shared_server.url, auth=(other, "")) as client:
        assert client.get(f"/schedules/{project}").status_code == 403
        assert client.delete(f"/schedules/{project}/{sid}").status_code == 403
        assert client.post(f"/schedules/{project}/{sid}/run").status_code == 403
    with httpx.Client(base_url=shared_server.url) as anonymous:
        answer = anonymous.get(f"/schedules/{project}")
        assert answer.status_code == 401
    assert len(schedules(http, project)) == 1
    assert http.get(f"/schedules/{project}/{sid + 10_000}").status_code == 404


def test_the_server_fires_schedules(http: httpx.Client, project: int) -> None:
    made = http.post(f"/schedules/{project}", json={
        "spider": "books", "every": "1s", "overlap": "allow", "args": {"page": "1"}})
    sid = made.json()["schedule"]["id"]
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(rows) < 3:
        time.sleep(0.2)
        rows = list(map(orjson.loads, http.get(
            f"/jobq/{project}/list", params={"state": "pending", "jobmeta": [
                "scheduled_by", "schedule", "scheduled_for", "spider_args"]}).content.splitlines()))
    http.post(f"/schedules/{project}/{sid}/pause")
    assert len(rows) >= 3
    assert {r["scheduled_by"] for r in rows} == {"periodicjobs"}
    assert {r["schedule"] for r in rows} == {sid}
    assert {orjson.dumps(r["spider_args"]) for r in rows} == {b'{"page":"1"}'}
    fired = sorted(r["scheduled_for"] for r in rows)
    assert len(set(fired)) == len(fired)
    shown = http.get(f"/schedules/{project}/{sid}").json()["schedule"]
    assert shown["last_outcome"].startswith("pushed")


def test_jobq_push_with_spider_arguments(shared_server: helpers.Server, project: int,
                                         http: httpx.Client) -> None:
    done = subprocess.run(
        [*helpers.jobq_command(), "push", str(project), "books", "-a", "category=fiction",
         "--arg", "pages=2", "--tag", "nightly", "--url", shared_server.url, "--apikey",
         shared_server.admin_key, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    key = orjson.loads(done.stdout)["key"]
    meta = http.get(f"/jobs/{key}").json()
    assert meta["spider_args"] == {"category": "fiction", "pages": "2"}
    assert meta["tags"] == ["nightly"]



def test_shutdown_stops_the_scheduler_before_the_storage(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The app in this process, its lifespan driven as a server does: the scheduler task
    runs once started, and is gone once shut down (a scheduler left running would wake
    to a closed storage and log about it)."""

    def schedulers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "jobq-periodic-jobs"]

    async def run() -> None:
        app = create_app(Settings(db=db_url, admin_keys=("k",)), open_storage(db_url))
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        while not sent:
            await asyncio.sleep(0.01)
        assert sent == ["lifespan.startup.complete"]
        assert len(schedulers()) == 1
        await asyncio.sleep(0.2)  # it has looked for due schedules
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 10)
        assert sent[-1] == "lifespan.shutdown.complete"
        assert schedulers() == []
        await asyncio.sleep(POLL_SECONDS + 0.2)  # past the time it would have woken

    with caplog.at_level(logging.DEBUG, logger="jobq"):
        asyncio.run(run())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
