"""`kill -9` of the server while a job writes batches: every batch answered 200 is there
after a restart, nothing is half-written, and the retry of the unanswered batch stores it
once. Both backends."""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests import helpers

pytestmark = pytest.mark.slow

BATCH = 500


def body(start: int) -> bytes:
    return gzip.compress(b"".join(json.dumps({"i": i, "pad": "x" * 100}).encode() + b"\n"
                                  for i in range(start, start + BATCH)))


def test_kill_9_during_batch_writes_loses_nothing_answered(db_url: str, tmp_path: Path) -> None:
    server = helpers.Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        with server.client() as http:
            pushed = http.post("/jobq/1/push", json={"spider": "s", "state": "running"})
            key, token = pushed.json()["key"], pushed.json()["auth"]
        answered: list[int] = []
        refused: list[str] = []

        def write() -> None:
            start = 0
            with httpx.Client(base_url=server.url, auth=(key, token), timeout=30) as job_http:
                while True:
                    try:
                        answer = job_http.post(f"/items/{key}", content=body(start),
                                               params={"start": start},
                                               headers={"content-encoding": "gzip"})
                    except httpx.HTTPError:
                        return  # the server died under this request: not answered
                    if answer.status_code != 200:
                        refused.append(f"{answer.status_code} {answer.text}")
                        return
                    answered.append(start)
                    start += BATCH

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 60
        while len(answered) < 20 and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        writer.join(30)
        assert not writer.is_alive()
        assert refused == []
        assert len(answered) >= 20
    finally:
        server.stop()

    acked = answered[-1] + BATCH
    server = helpers.Server(db=db_url, log=tmp_path / "server2.log").start()
    try:
        with server.client() as http:
            stored = [json.loads(line)["i"] for line in http.get(f"/items/{key}").content
                      .splitlines()]
            assert stored[:acked] == list(range(acked)), "an answered batch was lost"
            # the batch in flight at the kill is there whole or not at all
            assert len(stored) in (acked, acked + BATCH)
            assert stored == list(range(len(stored)))
            retried = http.post(f"/items/{key}", content=body(acked), params={"start": acked},
                                headers={"content-encoding": "gzip"})
            assert retried.status_code == 200
            stats = http.get(f"/items/{key}/stats").json()
            assert stats["totals"]["input_values"] == acked + BATCH
    finally:
        server.stop()
