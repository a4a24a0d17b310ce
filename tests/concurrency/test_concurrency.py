"""Many clients at once against a real server: claims, incremental sync, kill -9."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers import Server

P = 53


def lines(response: httpx.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def push_many(client: httpx.Client, n: int, **fields: object) -> list[str]:
    body = b"\n".join(orjson.dumps({"spider": "s1", **fields}) for _ in range(n))
    return [str(row["key"]) for row in lines(client.post(f"/jobq/{P}/push", content=body))]


def test_32_threads_claim_1000_jobs_each_exactly_once(server: Server) -> None:
    with server.client() as client:
        pushed = push_many(client, 1000)
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def worker() -> None:
        with server.client() as client:
            start.wait()
            while True:
                response = client.post(f"/jobq/{P}/startjob")
                if response.status_code == 204:
                    return
                assert response.status_code == 200, response.text
                with lock:
                    claimed.append(response.json()["key"])

    with ThreadPoolExecutor(32) as pool:
        for future in [pool.submit(worker) for _ in range(32)]:
            future.result()
    assert len(claimed) == len(set(claimed)) == 1000
    assert sorted(claimed) == sorted(pushed)
    with server.client() as client:
        assert client.get(f"/jobq/{P}/count", params={"state": "running"}).json() == 1000


def test_incremental_sync_under_concurrent_finishes_misses_nothing(server: Server) -> None:
    with server.client() as client:
        keys = push_many(client, 600)
    random.shuffle(keys)
    done = threading.Event()
    seen: list[str] = []

    def finisher(part: list[str]) -> None:
        with server.client() as client:
            for key in part:
                body = orjson.dumps({"key": key, "state": "finished"})
                assert client.post(f"/jobq/{P}/update", content=body).status_code == 200

    def consumer() -> None:
        last = None
        with server.client() as client:
            while True:
                finished = done.is_set()  # read before listing: the last pass sees all
                params: dict[str, object] = {"state": "finished", "count": 100_000}
                if last is not None:
                    params["stop"] = last
                rows = lines(client.get(f"/jobq/{P}/list", params=params))
                if rows:
                    last = rows[0]["key"]
                    seen.extend(str(r["key"]) for r in reversed(rows))
                if finished:
                    return
                time.sleep(0.005)

    with ThreadPoolExecutor(1) as reader_pool:
        # a future, not a bare thread: an assertion failing in the consumer fails the test
        reader = reader_pool.submit(consumer)
        try:
            with ThreadPoolExecutor(8) as pool:
                for future in [pool.submit(finisher, keys[i::8]) for i in range(8)]:
                    future.result()
        finally:
            done.set()
        reader.result(timeout=60)
    assert len(seen) == len(set(seen)), "a job was seen twice"
    assert set(seen) == set(keys), f"{len(set(keys) - set(seen))} jobs missed"


def _check_running(futures: list[Future[None]]) -> None:
    """Raise what failed in a thread; a thread that ended by itself is a failure too."""
    for future in futures:
        if future.done():
            future.result()
            raise AssertionError("a thread stopped before the server was killed")


@pytest.mark.slow
def test_kill_9_while_pushing_loses_no_acknowledged_job(db_url: str, tmp_path: Path) -> None:
    server = Server(db=db_url, log=tmp_path / "server.log").start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def producer() -> None:
        with httpx.Client(base_url=server.url, auth=(server.admin_key, ""), timeout=5) as c:
            while not stop.is_set():
                try:
                    keys = push_many(c, 5)  # any answer but 200 fails the test
                except httpx.TransportError:
                    return  # the server died mid-request: that push was not acknowledged
                with lock:
                    acknowledged.extend(keys)

    with ThreadPoolExecutor(6) as pool:
        producers = [pool.submit(producer) for _ in range(6)]
        try:
            deadline = time.monotonic() + 60
            while len(acknowledged) < 200:  # kill in the middle of the pushes
                _check_running(producers)
                assert time.monotonic() < deadline, f"only {len(acknowledged)} pushed in 60s"
                time.sleep(0.01)
        finally:
            server.kill()
            stop.set()
        for p in producers:
            p.result(timeout=10)
    assert len(acknowledged) >= 200
    server.start()
    try:
        with server.client() as client:
            rows = lines(client.get(f"/jobq/{P}/list",
                                    params={"state": "pending", "count": 100_000}))
    finally:
        server.stop()
    stored = {str(r["key"]) for r in rows}
    assert not set(acknowledged) - stored, "acknowledged jobs lost"
