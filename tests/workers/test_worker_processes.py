"""Leases with real processes: `jobq serve` nodes and workers (tests/workers/fake_worker.py)
that talk HTTP only, killed with `kill -9`. Waits are on conditions with a deadline; the
servers run with a short `--worker-timeout`."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.helpers import Server, wait_until

P = 53
FAST = ["--worker-timeout", "2", "--cancel-timeout", "2", "--log-level", "info"]



def rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def jobs_in(client: httpx.Client, state: str, *meta: str) -> list[dict[str, Any]]:
    params: list[tuple[str, str | int]] = [("state", state), ("count", 100_000)]
    params += [("jobmeta", m) for m in meta]
    return rows(client.get(f"/jobq/{P}/list", params=params))


class Worker:
    """A fake worker process."""

    def __init__(self, servers: list[Server], slots: int, name: str, log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.workers.fake_worker",
                 ",".join(s.url for s in servers), servers[0].admin_key, str(P), str(slots),
                 name],
                stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
            )

    def claimed(self) -> list[str]:
        return re.findall(r"^claimed (\S+)$", self.log.read_text(), re.M)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


@pytest.fixture
def fast_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(db=db_url, log=tmp_path / "server.log", extra_args=FAST).start()
    yield srv
    srv.stop()


def test_jobs_of_a_killed_worker_are_lost(
    fast_server: Server, workers: list[Worker], tmp_path: Path
) -> None:
    with fast_server.client() as client:
        client.post(f"/jobq/{P}/push", content=b'{"spider": "s"}\n' * 3).raise_for_status()
        worker = Worker([fast_server], 3, "doomed", tmp_path / "worker.log")
        workers.append(worker)
        wait_until("the worker runs 3 jobs", lambda: len(worker.claimed()) == 3)
        # it heartbeats: its jobs outlive several worker timeouts
        first = client.get("/workers").json()[0]["last_heartbeat"]
        wait_until("several timeouts passed", lambda: client.get("/workers").json()[0][
            "last_heartbeat"] > first + 5000, timeout=20)
        assert len(jobs_in(client, "running")) == 3
        assert client.get("/workers").json()[0]["jobs"] == sorted(worker.claimed())
        worker.kill()
        wait_until("its jobs are finished", lambda: len(jobs_in(client, "finished")) == 3)
        finished = jobs_in(client, "finished", "close_reason", "completed_by")
        assert {(r["close_reason"], r["completed_by"]) for r in finished} == {("lost", "jobq")}
        (listed,) = client.get("/workers").json()
        assert listed["state"] == "lost" and listed["jobs"] == []
        assert 'jobq_lease_outcomes_total{outcome="lost"} 3.0' in client.get("/metrics").text
        wait_until("/metrics counts the lost worker", lambda: 'jobq_workers{state="lost"} 1.0'
                   in client.get("/metrics").text, timeout=15)


def test_cancel_reaches_the_worker_through_the_heartbeat(
    fast_server: Server, workers: list[Worker], tmp_path: Path
) -> None:
    with fast_server.client() as client:
        client.post(f"/jobq/{P}/push", json={"spider": "s"}).raise_for_status()
        worker = Worker([fast_server], 1, "obedient", tmp_path / "worker.log")
        workers.append(worker)
        wait_until("the worker runs the job", lambda: len(worker.claimed()) == 1)
        (key,) = worker.claimed()
        assert client.post(f"/jobq/{P}/cancel", json=[{"key": key}]).json() == {"count": 1}
        wait_until("the worker finished it", lambda: len(jobs_in(client, "finished")) == 1)
        (row,) = jobs_in(client, "finished", "close_reason", "completed_by")
        assert row["close_reason"] == "cancelled" and row["completed_by"] == "admin"
        assert f"stopped {key} cancelled" in worker.log.read_text()


def claim_while_pushing(poll_on: Server, push_on: Server) -> tuple[httpx.Response, str, float]:
    """A long-polling startjob on one node, a push on another: the claim's answer, the
    pushed key and how long after the push the claim was answered."""
    result: dict[str, Any] = {}

    def claim() -> None:
        with poll_on.client() as own:
            result["answer"] = own.post(f"/jobq/{P}/startjob", params={"wait": 20})
            result["at"] = time.monotonic()

    waiter = threading.Thread(target=claim)
    waiter.start()
    time.sleep(0.5)  # let the claim find nothing and wait (not needed for correctness)
    with push_on.client() as client:
        pushed_at = time.monotonic()
        pushed = client.post(f"/jobq/{P}/push", json={"spider": "s"}).json()["key"]
    waiter.join(25)
    return result["answer"], pushed, result["at"] - pushed_at


def test_long_poll_claims_a_job_pushed_meanwhile(fast_server: Server) -> None:
    answer, pushed, after = claim_while_pushing(fast_server, fast_server)
    assert answer.status_code == 200 and answer.json()["key"] == pushed
    # woken by the push, not by the periodic re-check (RECHECK = 5 s); the latency itself
    # is measured by the benchmark
    assert after < 4.0
    with fast_server.client() as client:
        assert client.post(f"/jobq/{P}/startjob", params={"wait": 1}).status_code == 204
        assert client.post(f"/jobq/{P}/startjob", params={"wait": 61}).status_code == 400


@pytest.mark.parametrize("http_server", ["granian", "uvicorn"])
def test_a_stopping_server_answers_its_long_polls_at_once(
    db_url: str, tmp_path: Path, http_server: str
) -> None:
    """SIGTERM with a claim long-polling: the claim answers 204 at once and the server
    exits 0 without waiting for the poll's end (it held the stop 30 s, then was cut)."""
    srv = Server(db=db_url, log=tmp_path / "server.log",
                 extra_args=["--http-server", http_server]).start()
    result: dict[str, Any] = {}

    def claim() -> None:
        with srv.client() as own:
            try:
                result["answer"] = own.post(f"/jobq/{P}/startjob", params={"wait": 60})
            except httpx.HTTPError as exc:  # asserted below, in the test's thread
                result["error"] = exc

    waiter = threading.Thread(target=claim)
    try:
        waiter.start()
        time.sleep(1)  # let the claim find nothing and wait
        assert srv.process is not None
        stopped_at = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        assert srv.process.wait(20) == 0
        took = time.monotonic() - stopped_at
        waiter.join(20)
    finally:
        srv.kill()
    assert "error" not in result, f"the claim got no answer: {result['error']!r}"
    assert result["answer"].status_code == 204
    assert took < 5, f"the server took {took:.1f} s to stop"


# -- three nodes on one PostgreSQL ---------------------------------------------------------

NODES = 3


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    servers = [Server(db=pg_url, log=tmp_path / f"node{i}.log", extra_args=FAST)
               for i in range(NODES)]
    with ThreadPoolExecutor(NODES) as pool:
        list(pool.map(lambda s: s.start(), servers))
    yield servers
    for server in servers:
        server.stop()


def reaped(servers: list[Server]) -> Counter[tuple[str, str]]:
    """(job key, outcome) of every expiry the nodes' reapers logged."""
    found: Counter[tuple[str, str]] = Counter()
    for server in servers:
        assert server.log is not None
        for key, outcome in re.findall(r"reaper: job (\S+) of worker \S+: (.+)$",
                                       server.log.read_text(), re.M):
            found[key, outcome] += 1
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_three_nodes_requeue_then_lose_each_job_exactly_once(
    cluster: list[Server], workers: list[Worker], tmp_path: Path
) -> None:
    jobs = 40
    client = cluster[0].client()
    client.post(f"/projects/{P}/settings", json={"requeue_lost": True, "max_retries": 1})
    keys = [r["key"] for r in rows(client.post(
        f"/jobq/{P}/push", content=b'{"spider": "s"}\n' * jobs))]
    for round_ in (1, 2):
        batch = [Worker(cluster, 4, f"w{round_}-{i}", tmp_path / f"w{round_}-{i}.log")
                 for i in range(jobs // 4)]
        workers.extend(batch)
        wait_until("every job is claimed",
                   lambda b=batch: sum(len(w.claimed()) for w in b) == jobs, timeout=60)
        for worker in batch:
            worker.kill()
        if round_ == 1:
            wait_until("every job is back to pending",
                       lambda: len(jobs_in(client, "pending")) == jobs, timeout=60)
            pending = jobs_in(client, "pending", "retries")
            assert sorted(r["key"] for r in pending) == sorted(keys)
            assert {r["retries"] for r in pending} == {1}
    wait_until("every job is finished", lambda: len(jobs_in(client, "finished")) == jobs,
               timeout=60)
    finished = jobs_in(client, "finished", "close_reason", "retries")
    assert {(r["close_reason"], r["retries"]) for r in finished} == {("lost", 1)}
    outcomes = reaped(cluster)
    assert outcomes == Counter({(k, o): 1 for k in keys for o in ("requeued", "lost")}), (
        "each job requeued once and lost once, by one node")
    nodes_that_reaped = sum(1 for s in cluster if s.log and "reaper: job" in s.log.read_text())
    assert nodes_that_reaped >= 1
    client.close()


@pytest.mark.postgres
def test_long_poll_is_woken_by_a_push_on_another_node(cluster: list[Server]) -> None:
    answer, pushed, after = claim_while_pushing(cluster[0], cluster[1])
    assert answer.status_code == 200 and answer.json()["key"] == pushed
    assert after < 4.0, "woken by the other node's NOTIFY, not by the 5 s re-check"


@pytest.mark.postgres
@pytest.mark.slow
def test_three_nodes_fifty_idle_long_polling_workers(cluster: list[Server]) -> None:
    idle = 50
    claimed: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def poll(index: int) -> None:
        server = cluster[index % NODES]
        with server.client() as client:
            while not stop.is_set():
                answer = client.post(f"/jobq/{P}/startjob", params={"wait": 5})
                if answer.status_code == 200:
                    with lock:
                        claimed.append(answer.json()["key"])
                elif answer.status_code != 204:
                    with lock:
                        failures.append(f"{answer.status_code} {answer.text}")

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(idle)]
    for thread in threads:
        thread.start()
    try:
        with cluster[0].client() as client:
            time.sleep(1)  # the pollers are waiting (not needed for correctness)
            keys = []
            for _ in range(idle):
                node = random.choice(cluster)
                answer = httpx.post(f"{node.url}/jobq/{P}/push", json={"spider": "s"},
                                    auth=(node.admin_key, ""))
                keys.append(answer.json()["key"])
            wait_until("every pushed job is claimed", lambda: len(claimed) == idle)
            assert sorted(claimed) == sorted(keys), "each job claimed once"
            assert len(jobs_in(client, "running")) == idle
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
