"""`jobq worker` end to end: a real server, a real worker process, the test Scrapy project
crawling the local site, and the official client reading what arrived."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from scrapinghub import ScrapinghubClient

from tests import helpers
from tests.worker import site
from tests.worker.workers import (
    PROJECT_DIR,
    WorkerProcess,
    alive,
    crawl_pids,
    meta,
    push,
    start_server,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
PROJECT = 1


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[helpers.Server]:
    srv = start_server(db_url, tmp_path, worker_timeout=3)
    yield srv
    srv.stop()


@pytest.fixture
def http(server: helpers.Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def sc(server: helpers.Server) -> Iterator[ScrapinghubClient]:
    client = ScrapinghubClient(server.admin_key, endpoint=server.url)
    yield client
    client.close()


@pytest.fixture
def worker(server: helpers.Server, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(server, tmp_path / "w1",
                         ["--project", str(PROJECT), "--slots", "2", "--kill-timeout", "5"])
    proc.start()
    yield proc
    proc.stop()


def test_a_crawl_arrives_whole(worker: WorkerProcess, http: httpx.Client,
                               sc: ScrapinghubClient, site_url: str) -> None:
    key = push(http, PROJECT, spider="books", spider_args={"base": site_url,
                                                          "category": "fiction"},
               job_settings={"BOOKS_TAG": "tagged"})
    found = wait_finished(http, key)
    assert found["close_reason"] == "finished", worker.text()[-3000:]
    job = sc.get_job(key)
    items = list(job.items.iter())
    assert len(items) == site.BOOKS
    assert {(i["category"], i["tag"]) for i in items} == {("fiction", "tagged")}
    assert {i["memory_limit_mb"] for i in items} == {950}  # 1 unit x --memory-per-unit
    assert sorted(i["title"] for i in items) == sorted(
        f"Book {n}" for n in range(1, site.BOOKS + 1))
    requests = list(job.requests.iter())
    assert len(requests) == site.PAGES + site.BOOKS
    messages = [line["message"] for line in job.logs.iter()]
    assert any("Spider closed (finished)" in m for m in messages)
    stats = job.metadata.get("scrapystats")
    assert stats["item_scraped_count"] == site.BOOKS
    assert stats["finish_reason"] == "finished"


def test_outcomes(worker: WorkerProcess, http: httpx.Client, sc: ScrapinghubClient,
                  site_url: str) -> None:
    boom = push(http, PROJECT, spider="boom")
    script = push(http, PROJECT, spider="py:hello.py", job_cmd=["py:hello.py", "x"])
    capped = push(http, PROJECT, spider="endless", spider_args={"base": site_url},
                  job_settings={"CLOSESPIDER_ITEMCOUNT": 3})
    assert wait_finished(http, boom)["close_reason"] == "failed"
    assert any("boom: this spider cannot start" in line["message"]
               for line in sc.get_job(boom).logs.iter())
    assert wait_finished(http, script)["close_reason"] == "no_reason"
    assert any("hello from a script job ['x']" in line["message"]
               for line in sc.get_job(script).logs.iter())
    assert wait_finished(http, capped)["close_reason"] == "closespider_itemcount"


def test_cancel_stops_a_running_crawl(worker: WorkerProcess, http: httpx.Client,
                                      sc: ScrapinghubClient, site_url: str) -> None:
    key = push(http, PROJECT, spider="endless", spider_args={"base": site_url})
    wait_for(lambda: sc.get_job(key).items.stats().get("totals", {}).get("input_values", 0)
             >= 3 if meta(http, key).get("state") == "running" else False, what="items")
    pid = worker.job_pid(key)
    assert pid is not None and alive(pid)
    assert http.post(f"/jobq/{PROJECT}/cancel", json={"key": key}).status_code == 200
    found = wait_finished(http, key, timeout=60)
    assert found["close_reason"] == "cancelled", worker.text()[-3000:]
    assert not alive(pid)


def test_kill_9_leaves_no_orphans_and_the_job_lost(
        server: helpers.Server, http: httpx.Client, tmp_path: Path, site_url: str) -> None:
    before = crawl_pids()
    proc = WorkerProcess(server, tmp_path / "w9", ["--project", str(PROJECT)]).start()
    key = push(http, PROJECT, spider="endless", spider_args={"base": site_url})
    pid = wait_for(lambda: proc.job_pid(key), what="the crawl process")
    assert alive(pid)
    proc.signal(signal.SIGKILL)
    proc.wait()
    # neither the crawl nor the warm interpreter waiting for the next job is left
    wait_for(lambda: not (crawl_pids() - before), timeout=10, what="no orphan crawl")
    # a killed process loses its command line before it is gone: wait for the exit itself
    wait_for(lambda: not alive(pid), timeout=10, what="the crawl process gone")
    assert wait_finished(http, key, timeout=30)["close_reason"] == "lost"


def test_sigterm_drains_then_stops_with_shutdown(
        server: helpers.Server, http: httpx.Client, tmp_path: Path, site_url: str) -> None:
    proc = WorkerProcess(server, tmp_path / "wt", ["--project", str(PROJECT),
                                                   "--drain-timeout", "1"]).start()
    key = push(http, PROJECT, spider="endless", spider_args={"base": site_url})
    wait_for(lambda: meta(http, key).get("state") == "running", what="running")
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert meta(http, key)["close_reason"] == "shutdown"
    with server.client() as admin:
        assert admin.get("/workers").json() == []


def test_server_restart_mid_crawl_loses_nothing(
        db_url: str, tmp_path: Path, site_url: str) -> None:
    """The server goes away for a while (shorter than the worker timeout): the crawl goes
    on, the worker keeps what it produces, and everything arrives, the outcome last."""
    server = start_server(db_url, tmp_path, worker_timeout=20)
    proc = WorkerProcess(server, tmp_path / "wr", ["--project", str(PROJECT)]).start()
    try:
        with server.client() as http:
            key = push(http, PROJECT, spider="endless", spider_args={"base": site_url},
                       job_settings={"CLOSESPIDER_ITEMCOUNT": 300})
            wait_for(lambda: meta(http, key).get("state") == "running", what="running")
        server.stop()
        # the crawl goes on meanwhile; its output waits on the worker's disk
        wait_for(lambda: "server unavailable" in proc.text(), timeout=30,
                 what="the worker to meet the outage")
        server.start()
        with server.client() as http:
            found = wait_finished(http, key)
        assert found["close_reason"] == "closespider_itemcount", proc.text()[-3000:]
        sc = ScrapinghubClient(server.admin_key, endpoint=server.url)
        try:
            job = sc.get_job(key)
            numbers = [i["n"] for i in job.items.iter()]
            logs = [line["message"] for line in job.logs.iter()]
        finally:
            sc.close()
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert len(numbers) >= 300
        assert found["scrapystats"]["item_scraped_count"] == len(numbers)
        assert any("Spider closed (closespider_itemcount)" in m for m in logs)
    finally:
        proc.stop()
        server.stop()


def running_units(http: httpx.Client) -> int:
    """Units of the jobs the server counts as running (claimed)."""
    rows = http.get(f"/jobq/{PROJECT}/list", params={"state": "running"}).text.splitlines()
    return sum(int(orjson.loads(row).get("units") or 1) for row in rows if row.strip())


def most_units_at_once(worker_log: str) -> int:
    """The most units the worker ran at once, from its log of starts and exits."""
    units: dict[str, int] = {}
    running = most = 0
    for match in re.finditer(r"job (\S+): (?:started \(.*?, (\d+) unit|process exited)",
                             worker_log):
        key, started = match.group(1), match.group(2)
        if started:
            units[key] = int(started)
            running += units[key]
        else:
            running -= units.pop(key)
        most = max(most, running)
    return most


def test_units_take_slots(server: helpers.Server, http: httpx.Client, tmp_path: Path,
                          sc: ScrapinghubClient, site_url: str) -> None:
    """A job of 2 units waits for both slots of a worker of 2 slots, and gets 2 units of
    memory; jobs of 1 unit share the slots."""
    proc = WorkerProcess(server, tmp_path / "wu", ["--project", str(PROJECT), "--slots", "2",
                                                   "--memory-per-unit", "600"]).start()
    try:
        def small(items: int = 40) -> str:
            return push(http, PROJECT, spider="endless", spider_args={"base": site_url},
                        job_settings={"CLOSESPIDER_ITEMCOUNT": items})

        # long enough that the big job waits longer than the worker timeout (3 s) for its
        # slots, and jobs claimed meanwhile would be lost if not heartbeated
        first = small(items=300)
        wait_for(lambda: meta(http, first).get("state") == "running", what="running")
        big = push(http, PROJECT, spider="books", units=2,
                   spider_args={"base": site_url, "category": "big"})
        rest = [small(), small()]
        for key in [first, big, *rest]:
            assert wait_finished(http, key)["close_reason"] in ("finished",
                                                               "closespider_itemcount")
        assert {i["memory_limit_mb"] for i in sc.get_job(big).items.iter()} == {1200}
        assert most_units_at_once(proc.text()) == 2, proc.text()[-3000:]
    finally:
        proc.stop()


def test_two_workers_and_a_botgroup_of_max_running_1(
        server: helpers.Server, http: httpx.Client, tmp_path: Path, site_url: str) -> None:
    assert http.post(f"/projects/{PROJECT}/settings", json={"botgroups": ["solo"]}
                     ).status_code == 200
    assert http.post("/botgroups/solo/max_running", json=1).status_code == 200
    procs = [WorkerProcess(server, tmp_path / f"wb{i}",
                           ["--project", str(PROJECT), "--botgroup", "solo", "--slots", "2",
                            "--name", f"worker-{i}"]).start() for i in range(2)]
    try:
        keys = [push(http, PROJECT, spider="endless", spider_args={"base": site_url},
                     job_settings={"CLOSESPIDER_ITEMCOUNT": 20}) for _ in range(4)]
        while meta(http, keys[-1]).get("state") != "finished":
            assert running_units(http) <= 1, "two jobs of the botgroup ran at once"
            time.sleep(0.05)
        for key in keys:
            assert wait_finished(http, key)["close_reason"] == "closespider_itemcount"
    finally:
        for proc in procs:
            proc.stop()


def test_jobq_run_waits_for_the_outcome(worker: WorkerProcess, server: helpers.Server,
                                        site_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    common = ["run", "--url", server.url, "--apikey", server.admin_key, str(PROJECT)]
    done = subprocess.run([*helpers.jobq_command(), *common, "books", "-a", f"base={site_url}",
                           "-s", "BOOKS_TAG=x", "--wait"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert f"{key}: finished" in done.stderr
    assert f"{site.BOOKS} items, {site.PAGES + site.BOOKS} pages" in done.stderr
    failed = subprocess.run([*helpers.jobq_command(), *common, "boom", "--wait"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert ": failed" in failed.stderr


def test_spiders_are_made_known_at_start_and_on_sighup(
        server: helpers.Server, http: httpx.Client, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project)
    proc = WorkerProcess(server, tmp_path / "ws", ["--project", str(PROJECT)],
                         project_dir=project).start()

    def known(name: str) -> bool:
        return http.get(f"/ids/{PROJECT}/spider/{name}").json() is not None

    try:
        wait_for(lambda: known("books") and known("endless"), what="the spiders")
        assert not known("fresh")
        # registered, so scheduling refuses a spider no worker can run
        refused = http.post("/api/run.json", data={"project": PROJECT, "spider": "fresh"})
        assert refused.status_code == 400 and "registered worker" in refused.text, refused.text
        spiders = project / "testproject" / "spiders"
        (spiders / "fresh.py").write_text(
            (spiders / "boom.py").read_text().replace('"boom"', '"fresh"'))
        proc.signal(signal.SIGHUP)
        wait_for(lambda: known("fresh"), what="the new spider")
    finally:
        proc.stop()


def test_a_second_sigterm_stops_at_once(
        server: helpers.Server, http: httpx.Client, tmp_path: Path, site_url: str) -> None:
    before = crawl_pids()
    proc = WorkerProcess(server, tmp_path / "w2", ["--project", str(PROJECT),
                                                   "--drain-timeout", "300"]).start()
    key = push(http, PROJECT, spider="endless", spider_args={"base": site_url})
    wait_for(lambda: proc.job_pid(key), what="a running crawl")
    proc.signal(signal.SIGTERM)
    wait_for(lambda: "stopping; no more claims" in proc.text(), what="the drain to begin")
    assert proc.process is not None and proc.process.poll() is None  # draining
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) != 0
    wait_for(lambda: not (crawl_pids() - before), timeout=5, what="no orphan crawl")


def test_a_worker_that_cannot_renew_its_leases_stops_its_jobs(
        server: helpers.Server, worker: WorkerProcess, http: httpx.Client,
        site_url: str) -> None:
    """The server is away longer than its worker timeout (3 s): it will count the job lost
    and may give it to another worker, so this worker must not let it run on."""
    key = push(http, PROJECT, spider="endless", spider_args={"base": site_url})
    pid = wait_for(lambda: worker.job_pid(key), what="a running crawl")
    server.stop()
    wait_for(lambda: not alive(pid), timeout=15, what="the crawl stopped")
    server.start()
    with server.client() as admin:
        assert wait_finished(admin, key)["close_reason"] == "lost"
