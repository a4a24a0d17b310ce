"""Many nodes, one queue: several `jobq serve` processes on one PostgreSQL database.

Producers push to random nodes, workers claim (startjob) and finish on random nodes,
consumers sync finished jobs with `list?stop=LASTKEY` on random nodes. No job may be
claimed twice or never, and every consumer must see every finished job exactly once:
this is what the per-project position lock of `jobq.storage.postgres` guarantees.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.helpers import Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

P = 53
NODES = 3
PRODUCERS = 6
WORKERS = 8
CONSUMERS = 2
JOBS = 3000
PUSH_BATCH = 10


def rows_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


class Cluster:
    """The nodes, and a client per thread that picks a live node at random."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.dead: set[int] = set()

    def live(self) -> list[int]:
        return [i for i in range(len(self.servers)) if i not in self.dead]

    def request(self, clients: dict[int, httpx.Client], method: str, path: str,
                retry_on_death: bool = True, **kwargs: Any) -> httpx.Response:
        """On a random live node; when that node is dead (connection refused) and the
        request surely did not reach it, on another."""
        while True:
            node = random.choice(self.live())
            if node not in clients:
                server = self.servers[node]
                clients[node] = httpx.Client(base_url=server.url,
                                             auth=(server.admin_key, ""), timeout=30)
            try:
                return clients[node].request(method, path, **kwargs)
            except httpx.ConnectError:
                if not retry_on_death:
                    raise
                time.sleep(0.01)


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    servers = [Server(db=pg_url, log=tmp_path / f"node{i}.log") for i in range(NODES)]
    # the nodes start together: the schema is made once, under the advisory lock
    with ThreadPoolExecutor(NODES) as pool:
        list(pool.map(lambda s: s.start(), servers))
    try:
        yield Cluster(servers)
    finally:
        for server in servers:
            server.stop()
        for i in range(NODES):
            log = (tmp_path / f"node{i}.log").read_text(errors="replace")
            assert "Traceback" not in log, f"node {i} logged an error:\n{log[-3000:]}"


def run_workload(
    cluster: Cluster, jobs: int, during: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Producers, workers and consumers at once; `during(pushed)` runs between pushes
    (e.g. to kill a node). Returns what each side saw."""
    pushed: list[str] = []
    claimed: list[str] = []
    finished: list[str] = []
    lost: list[str] = []  # requests whose answer was lost with a dead node
    seen: list[list[str]] = [[] for _ in range(CONSUMERS)]
    lock = threading.Lock()
    producers_done = threading.Event()
    workers_done = threading.Event()
    per_producer = jobs // PRODUCERS

    def producer(index: int, clients: dict[int, httpx.Client]) -> None:
        for start in range(0, per_producer, PUSH_BATCH):
            n = min(PUSH_BATCH, per_producer - start)
            body = b"\n".join(orjson.dumps({"spider": f"s{index % 3}", "n": start + i})
                              for i in range(n))
            try:
                response = cluster.request(clients, "POST", f"/jobq/{P}/push", content=body)
            except httpx.TransportError as exc:
                with lock:
                    lost.append(f"push: {exc!r}")
                continue
            keys = [str(r["key"]) for r in rows_of(response)]
            with lock:
                pushed.extend(keys)
                if during is not None:
                    during(len(pushed))

    def worker(index: int, clients: dict[int, httpx.Client]) -> None:
        while True:
            try:
                response = cluster.request(clients, "POST", f"/jobq/{P}/startjob",
                                           json={"worker": f"w{index}"})
            except httpx.TransportError as exc:
                with lock:
                    lost.append(f"startjob: {exc!r}")
                continue
            if response.status_code == 204:
                if producers_done.is_set():
                    return
                time.sleep(0.005)
                continue
            assert response.status_code == 200, response.text
            key = response.json()["key"]
            with lock:
                claimed.append(key)
            body = orjson.dumps({"key": key, "state": "finished", "close_reason": "finished"})
            while True:
                try:
                    response = cluster.request(clients, "POST", f"/jobq/{P}/update",
                                               content=body)
                except httpx.TransportError:
                    continue  # finishing again is harmless: finished -> finished
                assert response.status_code == 200, response.text
                break
            with lock:
                finished.append(key)

    def consumer(index: int, clients: dict[int, httpx.Client]) -> None:
        last = None
        while True:
            done = workers_done.is_set()  # read before listing: the last pass sees all
            params: dict[str, Any] = {"state": "finished", "count": 100_000}
            if last is not None:
                params["stop"] = last
            try:
                response = cluster.request(clients, "GET", f"/jobq/{P}/list", params=params)
            except httpx.TransportError:
                continue
            rows = rows_of(response)
            if rows:
                last = rows[0]["key"]
                seen[index].extend(str(r["key"]) for r in reversed(rows))
            if done:
                return
            time.sleep(random.uniform(0, 0.01))

    def closing(fn: Callable[[int, dict[int, httpx.Client]], None]) -> Callable[[int], None]:
        def run(index: int) -> None:
            clients: dict[int, httpx.Client] = {}
            try:
                fn(index, clients)
            finally:
                for client in clients.values():
                    client.close()

        return run

    with ThreadPoolExecutor(PRODUCERS + WORKERS + CONSUMERS) as pool:
        consumers = [pool.submit(closing(consumer), i) for i in range(CONSUMERS)]
        workers = [pool.submit(closing(worker), i) for i in range(WORKERS)]
        producers = [pool.submit(closing(producer), i) for i in range(PRODUCERS)]
        for future in producers:
            future.result()
        producers_done.set()
        for future in workers:
            future.result()
        workers_done.set()
        for future in consumers:
            future.result()
    return {"pushed": pushed, "claimed": claimed, "finished": finished, "seen": seen,
            "lost": lost}


def counts(cluster: Cluster) -> dict[str, int]:
    clients: dict[int, httpx.Client] = {}
    try:
        return {
            state: cluster.request(clients, "GET", f"/jobq/{P}/count", params={"state": state})
            .json()
            for state in ("pending", "running", "finished")
        }
    finally:
        for client in clients.values():
            client.close()


def test_three_nodes_claim_once_and_sync_exactly(cluster: Cluster) -> None:
    started = time.monotonic()
    seen = run_workload(cluster, JOBS)
    took = time.monotonic() - started
    pushed, claimed = seen["pushed"], seen["claimed"]
    assert len(pushed) == len(set(pushed)) == JOBS
    twice = [k for k, n in Counter(claimed).items() if n > 1]
    assert not twice, f"{len(twice)} jobs claimed twice, e.g. {twice[:5]}"
    never = set(pushed) - set(claimed)
    assert not never, f"{len(never)} jobs never claimed"
    assert set(claimed) == set(pushed)
    for index, consumer_seen in enumerate(seen["seen"]):
        dup = [k for k, n in Counter(consumer_seen).items() if n > 1]
        missed = set(pushed) - set(consumer_seen)
        assert not dup, f"consumer {index} saw {len(dup)} jobs twice, e.g. {dup[:5]}"
        assert not missed, f"consumer {index} missed {len(missed)} jobs"
        assert len(consumer_seen) == JOBS
    assert counts(cluster) == {"pending": 0, "running": 0, "finished": JOBS}
    print(f"\n{JOBS} jobs pushed, claimed, finished and synced on {NODES} nodes in {took:.1f}s")


def test_kill_9_of_a_node_loses_no_acknowledged_write(cluster: Cluster) -> None:
    jobs = JOBS // 3
    victim = NODES - 1
    killed = threading.Event()

    def kill_midway(pushed: int) -> None:
        if pushed >= jobs // 2 and not killed.is_set():
            killed.set()
            cluster.servers[victim].kill()
            cluster.dead.add(victim)

    seen = run_workload(cluster, jobs, during=kill_midway)
    assert killed.is_set()
    pushed, claimed, finished = seen["pushed"], seen["claimed"], seen["finished"]
    twice = [k for k, n in Counter(claimed).items() if n > 1]
    assert not twice, f"{len(twice)} jobs claimed twice"
    # every acknowledged push and finish is stored, as the surviving nodes see it
    clients: dict[int, httpx.Client] = {}
    try:
        stored = {
            str(r["key"]): str(r["state"])
            for r in rows_of(cluster.request(
                clients, "GET", f"/jobq/{P}/list",
                params={"state": ["pending", "running", "finished"], "count": 100_000}))
        }
    finally:
        for client in clients.values():
            client.close()
    assert not set(pushed) - set(stored), "acknowledged pushes lost"
    assert all(stored[k] == "finished" for k in finished), "acknowledged finishes lost"
    # the others carried on: what was not lost with the dead node got done
    unfinished = {k for k, state in stored.items() if state != "finished"}
    assert len(unfinished) <= len(seen["lost"]), (unfinished, seen["lost"])
    assert all(stored[k] == "running" for k in unfinished), "a pending job was left behind"
    for consumer_seen in seen["seen"]:
        assert len(consumer_seen) == len(set(consumer_seen)), "a consumer saw a job twice"
        assert set(consumer_seen) == {k for k, s in stored.items() if s == "finished"}
