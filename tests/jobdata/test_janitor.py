"""The janitor of job data: a deleted or removed job's data goes in the background;
`data_retention_days` removes the data of jobs finished longer ago and keeps the jobs,
marking `data_removed_time`. Real servers (janitor every 0.2 s), both backends; the
retention rule itself against real storage of both backends with a manual clock."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest

from jobq.core.jobdata import JobData
from jobq.domain.clock import ManualClock
from jobq.domain.records_data import Batch, Kind, parse_batch
from jobq.storage import open_storage
from jobq.storage.chunks import Prepared, StreamRef
from tests import helpers
from tests.jobdata.conftest import finish, running_job


def write_items(http: httpx.Client, key: str, n: int) -> None:
    body = gzip.compress(b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(n)))
    answer = http.post(f"/items/{key}", content=body, headers={"content-encoding": "gzip"},
                       params={"start": 0})
    assert answer.status_code == 200, answer.text
    log = gzip.compress(b'{"message": "m", "level": 20, "time": 1}\n')
    assert http.post(f"/logs/{key}", content=log,
                     headers={"content-encoding": "gzip"}).status_code == 200


def wait_until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("the janitor did not act in time")


def item_count(http: httpx.Client, key: str) -> int:
    answer = http.get(f"/items/{key}/stats")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["totals"]["input_values"])


def test_retention_removes_data_and_keeps_jobs(http: httpx.Client, project: int) -> None:
    old, _ = running_job(http, project)
    write_items(http, old, 3000)
    finish(http, project, old)
    live, _ = running_job(http, project)
    write_items(http, live, 10)
    assert item_count(http, old) == 3000
    # 0 days: every finished job is past retention; a running one is not
    assert http.post(f"/projects/{project}/settings",
                     json={"data_retention_days": 0}).status_code == 200
    wait_until(lambda: item_count(http, old) == 0)
    meta = http.get(f"/jobs/{old}").json()
    assert meta["state"] == "finished"
    assert isinstance(meta["data_removed_time"], int)
    assert http.get(f"/items/{old}").content == b""
    assert http.get(f"/logs/{old}").content == b""
    assert item_count(http, live) == 10
    assert "data_removed_time" not in http.get(f"/jobs/{live}").json()
    assert http.get(f"/jobq/{project}/list").json()["key"] == old


def test_deleting_a_job_deletes_its_data(http: httpx.Client, project: int) -> None:
    removed, _ = running_job(http, project)
    write_items(http, removed, 2000)
    deleted, _ = running_job(http, project)
    write_items(http, deleted, 2000)
    kept, _ = running_job(http, project)
    write_items(http, kept, 3)
    assert http.delete(f"/jobs/{removed}").status_code == 200
    assert http.post(f"/jobq/{project}/update",
                     json={"key": deleted, "state": "deleted"}).status_code == 200
    # the data goes in the background; the running job keeps writing meanwhile
    for start in range(3, 50):
        body = gzip.compress(json.dumps({"i": start}).encode())
        assert http.post(f"/items/{kept}", content=body, params={"start": start},
                         headers={"content-encoding": "gzip"}).status_code == 200
    wait_until(lambda: item_count(http, deleted) == 0)
    assert http.get(f"/items/{removed}").status_code == 404
    assert item_count(http, kept) == 50


@pytest.mark.anyio
async def test_retention_rule_with_a_manual_clock(db_url: str) -> None:
    """Without a retention setting data stays for good; a job finished 5 days ago is past
    4.5 days of retention, not past 6."""
    storage = open_storage(db_url)
    await storage.open()
    try:
        clock = ManualClock(now_ms=time.time_ns() // 1_000_000)
        data = JobData(storage, storage.chunk_store(), 1 << 20, clock)
        (pushed,) = await storage.push(7, [_running_job()], "admin")
        key = pushed.key
        assert key is not None
        batch: Batch = parse_batch(Kind.ITEMS, b'{"a": 1}\n', 0)
        await data.chunks.append(StreamRef(key, Kind.ITEMS), 0, Prepared.of(batch), False,
                                 None, clock.now_ms())
        await storage.update(7, [_finish(key)], "admin")
        finished = clock.now_ms()  # about when the job finished (storage's own clock)
        clock.advance(30 * 365 * 86400)  # thirty years on, and no setting: nothing goes
        assert await data.sweep() == 0
        assert await data.chunks.head(StreamRef(key, Kind.ITEMS)) is not None
        clock.set_wall(finished + 5 * 86400 * 1000)  # 5 days after it finished
        await storage.update_settings(7, {"data_retention_days": 6})
        assert await data.sweep() == 0
        await storage.update_settings(7, {"data_retention_days": 4.5})
        assert await data.sweep() == 1
        assert (await storage.get_job_meta(key) or {})["data_removed_time"] == clock.now_ms()
        assert await data.chunks.head(StreamRef(key, Kind.ITEMS)) is None
    finally:
        await storage.close()


def _running_job() -> object:
    from jobq.core.validation import new_job

    return new_job({"spider": "s", "state": "running"}, "line 1")


def _finish(key: object) -> object:
    from jobq.core.validation import job_update

    return job_update({"key": str(key), "state": "finished"}, "line 1", 7)


def test_the_server_stops_its_janitor_before_closing_the_storage(tmp_path: Path) -> None:
    """SIGTERM while the janitor sweeps all the time: the server exits 0 at once, and the
    janitor never meets a closed storage (it is cancelled first)."""
    log = tmp_path / "server.log"
    server = helpers.Server(db=f"sqlite:///{tmp_path / 'j.sqlite3'}", log=log,
                            extra_args=["--data-janitor-seconds", "0.01"]).start()
    with server.client() as http:
        key, _ = running_job(http, 1)
        write_items(http, key, 10)
        assert http.delete(f"/jobs/{key}").status_code == 200  # work for the janitor
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert server.process is not None and server.process.returncode == 0
    assert time.monotonic() - started < 5
    assert "janitor" not in log.read_text()
