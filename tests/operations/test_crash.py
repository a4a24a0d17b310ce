"""kill -9 of the server in the middle of pushes, claims and finishes, three times in a
row on the same database: nothing acknowledged is lost, nothing is left half-changed,
and the server starts again without a manual step."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers import Server

P = 53
STATES = ("pending", "running", "finished")


class Acknowledged:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pushed: set[str] = set()
        self.claimed: set[str] = set()
        self.finished: set[str] = set()


def _producer(url: str, key: str, ack: Acknowledged, stop: threading.Event) -> None:
    """Pushes until stopped or the server dies; any answer but 200 fails the test."""
    with httpx.Client(base_url=url, auth=(key, ""), timeout=5) as client:
        while not stop.is_set():
            body = b"\n".join(orjson.dumps({"spider": f"s{i % 3}"}) for i in range(4))
            try:
                response = client.post(f"/jobq/{P}/push", content=body)
            except httpx.TransportError:
                return  # killed mid-request: not acknowledged
            assert response.status_code == 200, response.text
            with ack.lock:
                ack.pushed.update(orjson.loads(line)["key"] for line in response.content.split())


def _worker(url: str, key: str, ack: Acknowledged, stop: threading.Event) -> None:
    """Claims and finishes jobs until stopped or the server dies; 204 (nothing pending)
    is the one other answer allowed."""
    with httpx.Client(base_url=url, auth=(key, ""), timeout=5) as client:
        while not stop.is_set():
            try:
                claimed = client.post(f"/jobq/{P}/startjob")
                if claimed.status_code == 204:
                    time.sleep(0.01)
                    continue
                assert claimed.status_code == 200, claimed.text
                job = claimed.json()["key"]
                with ack.lock:
                    ack.claimed.add(job)
                update = orjson.dumps({"key": job, "state": "finished"})
                finished = client.post(f"/jobq/{P}/update", content=update)
            except httpx.TransportError:
                return
            assert finished.status_code == 200, finished.text
            with ack.lock:
                ack.finished.add(job)


def _listed(client: httpx.Client, state: str) -> dict[str, dict[str, object]]:
    response = client.get(f"/jobq/{P}/list", params={"state": state, "count": 100_000})
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    return {str(r["key"]): r for r in rows}


def _check(server: Server, ack: Acknowledged) -> None:
    with server.client() as client:
        listed = {state: _listed(client, state) for state in STATES}
        everywhere = [k for rows in listed.values() for k in rows]
        assert len(everywhere) == len(set(everywhere)), "a job is in two queues"
        stored = set(everywhere)
        assert not ack.pushed - stored, "acknowledged pushes lost"
        assert not ack.claimed - set(listed["running"]) - set(listed["finished"])
        assert not ack.finished - set(listed["finished"]), "acknowledged finishes lost"
        for state in STATES:  # maintained counts agree with the rows
            assert client.get(f"/jobq/{P}/count", params={"state": state}).json() == len(
                listed[state]
            )
        for state, rows in listed.items():  # each job's metadata agrees with its queue
            for key in list(rows)[:25]:
                meta = client.get(f"/jobs/{key}").json()
                assert meta["state"] == state and f"{state}_time" in meta


def _check_running(futures: list[Future[None]]) -> None:
    """Raise what failed in a thread; a thread that ended by itself is a failure too."""
    for future in futures:
        if future.done():
            future.result()
            raise AssertionError("a thread stopped before the server was killed")


@pytest.mark.slow
def test_three_kill_9_in_a_row_lose_nothing(db_url: str, tmp_path: Path) -> None:
    server = Server(db=db_url, log=tmp_path / "server.log")
    ack = Acknowledged()
    for round_no in range(1, 4):
        server.start()
        stop = threading.Event()
        with ThreadPoolExecutor(6) as pool:
            # futures, not bare threads: a failed assertion in one fails the test
            running = [pool.submit(target, server.url, server.admin_key, ack, stop)
                       for target in (_producer, _producer, _producer, _worker, _worker, _worker)]
            try:
                deadline = time.monotonic() + 60
                while len(ack.pushed) < 150 * round_no or len(ack.finished) < 20 * round_no:
                    _check_running(running)
                    assert time.monotonic() < deadline, "too little work done in 60s"
                    time.sleep(0.01)
            finally:
                server.kill()  # in the middle of pushes, claims and finishes
                stop.set()
            for future in running:
                future.result(timeout=10)
        server.start()
        try:
            _check(server, ack)
        finally:
            server.stop()
    assert len(ack.pushed) >= 450 and len(ack.finished) >= 60
