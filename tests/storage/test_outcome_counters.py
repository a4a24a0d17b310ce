"""Outcome counters (issue 10, item 5) on every row of a finished job, on both backends:
each write that changes a job's metadata or state keeps the stored counters right, so a
plain `list` (which reads no metadata) shows `items`, `pages`, `logs` and `errors` of a
finished job with `scrapystats`, and no row of a job not finished shows them."""

from __future__ import annotations

from typing import Any

import pytest

from jobq.core.credentials import JobTokens, Principal
from jobq.core.queue import JobQueue, ListRequest, RenderedRows, plain
from jobq.domain.jobs import JobKey, State
from jobq.storage.base import Storage
from tests.workers.test_lease_storage import P as RIG_PROJECT
from tests.workers.test_lease_storage import Rig

pytestmark = pytest.mark.anyio

ADMIN = Principal("admin", is_admin=True)
P = 7
STATS = {"item_scraped_count": 12, "response_received_count": 30, "log_count/INFO": 40,
         "log_count/WARNING": 3, "log_count/ERROR": 2, "finish_reason": "finished"}
COUNTERS = {"items": 12, "pages": 30, "errors": 2, "logs": 45}
OTHER = {"item_scraped_count": 5, "log_count/DEBUG": 9}
OTHER_COUNTERS = {"items": 5, "pages": 0, "errors": 0, "logs": 9}
NAMES = tuple(COUNTERS)
EVERY = (State.PENDING, State.RUNNING, State.FINISHED)


@pytest.fixture
def queue(storage: Storage) -> JobQueue:
    return JobQueue(storage, JobTokens("k" * 32), max_count=1000)


async def rows(queue: JobQueue, **request: Any) -> dict[str, dict[str, Any]]:
    """The rows of a plain list of every queue (no metadata read), by key: built in
    Python, and the same built as JSON text by the database."""
    request.setdefault("states", EVERY)
    listed = await queue.list_jobs(ADMIN, P, ListRequest(**request))
    page = await queue.list_page(ADMIN, P, ListRequest(**request))
    assert isinstance(page, RenderedRows)
    assert [_timeless(r) for r in page.rows()] == [_timeless(r) for r in listed]
    return {row["key"]: row for row in listed}


def _timeless(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "elapsed"}


def counters(row: dict[str, Any]) -> dict[str, Any] | None:
    found = {name: row[name] for name in NAMES if name in row}
    assert not found or list(row)[-len(NAMES):] == list(NAMES), "last, in this order"
    return found or None


async def push(queue: JobQueue, *lines: dict[str, Any]) -> list[str]:
    return [answer["key"] for answer in await queue.push(ADMIN, P, list(lines))]


async def update(queue: JobQueue, *lines: dict[str, Any]) -> None:
    await queue.update(ADMIN, P, list(lines))


async def test_push_of_a_finished_job_lists_its_counters(queue: JobQueue) -> None:
    done, other, bare, waiting = await push(
        queue,
        {"spider": "s", "state": "finished", "scrapystats": STATS},
        {"spider": "s", "state": "finished", "scrapystats": OTHER, "tags": ["t"]},
        {"spider": "s", "state": "finished"},
        {"spider": "s", "scrapystats": STATS},
    )
    listed = await rows(queue)
    assert counters(listed[done]) == COUNTERS
    assert counters(listed[other]) == OTHER_COUNTERS and listed[other]["tags"] == ["t"]
    assert counters(listed[bare]) is None, "no scrapystats, no counters"
    assert counters(listed[waiting]) is None, "a pending job's row carries none"
    # a summary reads no metadata either
    (finished,) = await queue.summary(ADMIN, P, None, State.FINISHED, ListRequest())
    assert [counters(r) for r in plain(finished["summary"])] == [
        None, OTHER_COUNTERS, COUNTERS]


async def test_update_finish_and_rewrite_keep_them(queue: JobQueue) -> None:
    (key,) = await push(queue, {"spider": "s"})
    await update(queue, {"key": key, "state": "running", "scrapystats": OTHER})
    assert counters((await rows(queue))[key]) is None, "running: none"
    await update(queue, {"key": key, "state": "finished", "scrapystats": STATS})
    assert counters((await rows(queue))[key]) == COUNTERS
    await update(queue, {"key": key, "scrapystats": OTHER})  # same state, new stats
    assert counters((await rows(queue))[key]) == OTHER_COUNTERS
    # an update of the whole spider, about something else, keeps them
    await update(queue, {"key": "7/1", "note": "checked"})
    assert counters((await rows(queue))[key]) == OTHER_COUNTERS
    await update(queue, {"key": key, "state": "deleted"})
    assert key not in await rows(queue)
    (deleted,) = await queue.jobsummary(ADMIN, P, [JobKey.parse(key)], ["close_reason"])
    assert counters(deleted) is None, "a deleted job is not finished"


async def test_stats_written_before_finishing_show_once_finished(queue: JobQueue) -> None:
    (key,) = await push(queue, {"spider": "s", "scrapystats": STATS})
    started = await queue.start(ADMIN, P, {})
    assert started is not None and started["key"] == key
    assert counters((await rows(queue))[key]) is None
    await update(queue, {"key": key, "state": "finished"})
    assert counters((await rows(queue))[key]) == COUNTERS


async def test_metadata_post_and_delete_keep_them(queue: JobQueue) -> None:
    (key,) = await push(queue, {"spider": "s", "state": "finished"})
    job = JobKey.parse(key)
    await queue.set_job_meta(ADMIN, job, [{"scrapystats": STATS}])
    assert counters((await rows(queue))[key]) == COUNTERS
    await queue.set_job_meta(ADMIN, job, [{"close_reason": "finished"}])
    assert counters((await rows(queue))[key]) == COUNTERS, "another field: kept"
    await queue.set_job_meta(ADMIN, job, [{"scrapystats": "not stats"}])
    assert counters((await rows(queue))[key]) is None
    await queue.set_job_meta(ADMIN, job, [{"scrapystats": OTHER}])
    await queue.delete_job_meta_field(ADMIN, job, "items")
    assert counters((await rows(queue))[key]) == OTHER_COUNTERS
    await queue.delete_job_meta_field(ADMIN, job, "scrapystats")
    assert counters((await rows(queue))[key]) is None


async def test_cancel_of_a_pending_job_shows_its_counters(queue: JobQueue) -> None:
    pending, running = await push(queue, {"spider": "s", "scrapystats": STATS},
                                  {"spider": "s", "state": "running", "scrapystats": OTHER})
    assert await queue.cancel(ADMIN, P, [{"key": pending}, {"key": running}], None) == 2
    listed = await rows(queue)
    assert listed[pending]["state"] == "finished" and counters(listed[pending]) == COUNTERS
    assert listed[running]["state"] == "running" and counters(listed[running]) is None


async def test_jobmeta_fields_asked_for_win_over_counters(queue: JobQueue) -> None:
    (key,) = await push(queue, {"spider": "s", "state": "finished", "scrapystats": STATS,
                                "items": "mine"})
    listed = await queue.list_jobs(ADMIN, P, ListRequest(jobmeta=("items", "close_reason")))
    assert listed[0]["items"] == "mine"
    assert {n: listed[0][n] for n in ("pages", "errors", "logs")} == {
        "pages": 30, "errors": 2, "logs": 45}
    (summary,) = await queue.jobsummary(ADMIN, P, [JobKey.parse(key)], ["items"])
    assert summary["items"] == "mine" and summary["logs"] == 45


async def test_a_requeued_job_shows_none_until_finished_again(storage: Storage) -> None:
    """The reaper's requeue of a lost job (running -> pending) starts it afresh: the lost
    run's stats go, and the pending row carries no counters; the next run's stats count."""
    rig = Rig(storage)
    await rig.reaper.tick()
    assert RIG_PROJECT == P, "the rig pushes to the project listed here"
    await storage.update_settings(P, {"requeue_lost": True, "max_retries": 1})
    (key,) = await rig.push()
    worker = await rig.register()
    assert await rig.claim(worker) == key
    await rig.queue.set_job_meta(ADMIN, JobKey.parse(key), [{"scrapystats": STATS}])
    await rig.elapse(11)
    listed = await rows(rig.queue)
    assert listed[key]["state"] == "pending" and counters(listed[key]) is None
    assert "scrapystats" not in (await storage.get_job_meta(JobKey.parse(key)) or {})
    await rig.beat(worker)
    assert await rig.claim(worker) == key
    await update(rig.queue, {"key": key, "state": "finished"})
    assert counters((await rows(rig.queue))[key]) is None, "the lost run's stats went"
    await rig.queue.set_job_meta(ADMIN, JobKey.parse(key), [{"scrapystats": STATS}])
    assert counters((await rows(rig.queue))[key]) == COUNTERS

