"""A requeued job's second run, against a real `jobq serve` (short `--worker-timeout`):
the lost run's records go with the requeue, the next run writes its records from 0, and
the lost worker's writes, made the way `jobq worker` makes them (its `Api` and `JobRun`,
with the job token of its claim), are refused and change nothing."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from jobq.worker.api import Api, Refused
from jobq.worker.job import Discarded, JobRun
from jobq.worker.process import Launch
from jobq.worker.spool import Budget
from tests.helpers import Server, wait_until

P = 54
FAST = ["--worker-timeout", "2", "--cancel-timeout", "2"]



@pytest.fixture
def fast_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(db=db_url, log=tmp_path / "server.log", extra_args=FAST).start()
    yield srv
    srv.stop()


def records(client: httpx.Client, kind: str, key: str) -> list[dict[str, Any]]:
    answer = client.get(f"/{kind}/{key}", params={"meta": "_key"})
    assert answer.status_code == 200, answer.text
    return [orjson.loads(line) for line in answer.content.splitlines() if line.strip()]


def lines(run: str, first: int, n: int) -> list[bytes]:
    return [orjson.dumps({"run": run, "n": i}) for i in range(first, first + n)]


class Claimer:
    """A worker as `jobq worker` talks to the server: its `Api`, and a `JobRun` for the job
    it claimed (its process never started: the test sends what the crawl would)."""

    def __init__(self, server: Server, tmp_path: Path, name: str) -> None:
        self.api = Api(server.url, server.admin_key)
        self.id = str(self.api.register({"name": name, "slots": 1, "projects": [P]})["id"])
        job = self.api.claim(P, self.id, None, 0)
        assert job is not None
        launch = Launch(job=job, project_dir=tmp_path, python=sys.executable,
                        workdir=tmp_path / name, memory_limit_mb=100)
        self.run = JobRun(self.api, launch, Budget(1 << 20), 1.0, lambda run: None)
        self.key = self.run.key

    def write(self, kind: str, first: int, n: int) -> None:
        self.run._retry(functools.partial(self.api.write_batch, kind, self.key, first,
                                          lines(self.id, first, n),
                                          self.run.auth))

    def beat(self) -> dict[str, Any]:
        (answer,) = self.api.heartbeat(self.id, [self.key])["jobs"]
        return answer


def test_a_requeued_job_runs_again_from_record_0_and_the_lost_worker_writes_nothing(
    fast_server: Server, tmp_path: Path
) -> None:
    with fast_server.client() as admin:
        admin.post(f"/projects/{P}/settings", json={"requeue_lost": True}).raise_for_status()
        admin.post(f"/jobq/{P}/push", json={"spider": "s"}).raise_for_status()
        lost = Claimer(fast_server, tmp_path, "lost")
        key = lost.key
        assert lost.run.auth is not None and lost.run.auth[0] == key, "the claim's token"
        for kind in ("items", "logs", "requests"):
            lost.write(kind, 0, 3)
        lost.run._retry(lambda: lost.api.set_meta(key, "scrapystats", {"n": 3}, lost.run.auth))
        assert len(records(admin, "items", key)) == 3
        # the lost worker is partitioned away: no heartbeat for the worker timeout
        wait_until("the job is requeued", lambda: admin.get(f"/jobs/{key}").json()["state"]
                   == "pending")
        meta = admin.get(f"/jobs/{key}").json()
        assert meta["retries"] == 1 and "scrapystats" not in meta
        for kind in ("items", "logs", "requests"):
            assert records(admin, kind, key) == [], f"the lost run's {kind} went with it"
            stats = admin.get(f"/{kind}/{key}/stats").json()
            assert stats["totals"]["input_values"] == 0

        second = Claimer(fast_server, tmp_path, "second")
        assert second.key == key
        second.write("items", 0, 2)
        second.write("logs", 0, 1)
        assert second.beat()["action"] == "continue"

        # the lost worker comes back and goes on sending its run's records and outcome
        with pytest.raises(Discarded):
            lost.write("items", 3, 2)
        assert lost.run.discarded, "a refused write discards the job, as a heartbeat would"
        for call in (lambda: lost.api.write_batch("items", key, 0, lines("lost", 0, 5),
                                                  lost.run.auth),
                     lambda: lost.api.set_meta(key, "scrapystats", {"n": 5}, lost.run.auth),
                     lambda: lost.api.finish(key, "finished", lost.run.auth)):
            with pytest.raises(Refused) as refused:
                call()
            assert refused.value.status == 401 and "lost" in str(refused.value)
        assert lost.beat()["finish"] is False

        items = records(admin, "items", key)
        assert [(r["_key"], r["run"], r["n"]) for r in items] == [
            (f"{key}/0", second.id, 0), (f"{key}/1", second.id, 1)]
        assert [r["run"] for r in records(admin, "logs", key)] == [second.id]
        assert records(admin, "requests", key) == []
        meta = admin.get(f"/jobs/{key}").json()
        assert meta["state"] == "running" and "scrapystats" not in meta
        second.run._retry(lambda: second.api.finish(key, "finished", second.run.auth))
        meta = admin.get(f"/jobs/{key}").json()
        assert (meta["state"], meta["close_reason"]) == ("finished", "finished")
        lost.api.close()
        second.api.close()
