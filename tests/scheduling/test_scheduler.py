"""Schedules and the scheduler on both real backends, with an injected clock: ticks
pushed once with the schedule's metadata, overlap, catch-up, DST nights, pause and
resume, run now, racing schedulers, and bad input that creates nothing."""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo
from typing import Any

import pytest

from jobq import errors
from jobq.core.credentials import Principal
from jobq.core.schedules import Scheduler, Schedules, new_job
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobUpdate, ListQuery
from jobq.storage import open_storage
from jobq.storage.base import Storage

pytestmark = pytest.mark.anyio

ADMIN = Principal("admin", is_admin=True)
PROJECT = 53
START = 1_800_000_000_000  # a whole second
MADRID = zoneinfo.ZoneInfo("Europe/Madrid")


def utc_ms(*args: int, tz: datetime.tzinfo = datetime.UTC) -> int:
    return int(datetime.datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc]


async def jobs_of(storage: Storage, project: int = PROJECT) -> list[dict[str, Any]]:
    query = ListQuery(states=(State.PENDING, State.RUNNING, State.FINISHED), count=None,
                      with_meta=True)
    rows = [{**(r.meta or {}), "key": str(r.key)} for r in await storage.list_jobs(project, query)]
    return sorted(rows, key=lambda m: m["scheduled_for"])


def services(storage: Storage, now: int = START) -> tuple[ManualClock, Schedules, Scheduler]:
    clock = ManualClock(now_ms=now)
    return clock, Schedules(storage, clock), Scheduler(storage, clock)


async def test_each_tick_pushes_one_job_with_the_schedule_metadata(storage: Storage) -> None:
    clock, svc, scheduler = services(storage)
    made = await svc.create(ADMIN, PROJECT, {
        "spider": "books", "every": "10s", "args": {"category": "fiction"},
        "job_settings": {"LOG_LEVEL": "INFO"}, "tags": ["nightly"], "priority": 3,
        "units": 2, "overlap": "allow"})
    assert made["next_run_time"] == START + 10_000
    assert await scheduler.run_due() == 0
    clock.advance(9.999)
    assert await scheduler.run_due() == 0
    clock.advance(0.001)
    assert await scheduler.run_due() == 1
    assert await scheduler.run_due() == 0  # the same tick never twice
    clock.advance(10)
    assert await scheduler.run_due() == 1
    pushed = await jobs_of(storage)
    assert [m["scheduled_for"] for m in pushed] == [START + 10_000, START + 20_000]
    first = pushed[0]
    assert first["scheduled_by"] == "periodicjobs"
    assert first["schedule"] == made["id"]
    assert first["spider_args"] == {"category": "fiction"}
    assert first["job_settings"] == {"LOG_LEVEL": "INFO"}
    assert (first["tags"], first["priority"], first["units"]) == (["nightly"], 3, 2)
    shown = await svc.get(ADMIN, PROJECT, made["id"])
    assert shown["next_run_time"] == START + 30_000
    assert shown["last_run_time"] == START + 20_000
    assert shown["last_job"] == pushed[1]["key"]
    assert shown["last_outcome"].startswith("pushed ")
    assert [t["tick"] for t in shown["ticks"]] == [START + 20_000, START + 10_000]


async def test_overlap_skip_waits_for_the_previous_job(storage: Storage) -> None:
    clock, svc, scheduler = services(storage)
    made = await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "1m"})
    assert made["overlap"] == "skip"
    clock.advance(60)
    assert await scheduler.run_due() == 1
    clock.advance(60)
    assert await scheduler.run_due() == 0  # the first job is still pending
    shown = await svc.get(ADMIN, PROJECT, made["id"])
    assert "still pending or running" in shown["last_outcome"]
    first = shown["last_job"]
    await storage.update(PROJECT, [JobUpdate(JobKey.parse(first), State.RUNNING, {})], "w")
    clock.advance(60)
    assert await scheduler.run_due() == 0  # running counts too
    await storage.update(PROJECT, [JobUpdate(JobKey.parse(first), State.FINISHED, {})], "w")
    clock.advance(60)
    assert await scheduler.run_due() == 1
    assert len(await jobs_of(storage)) == 2


async def test_overlap_allow_pushes_while_the_previous_runs(storage: Storage) -> None:
    clock, svc, scheduler = services(storage)
    await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "1m", "overlap": "allow"})
    for _ in range(3):
        clock.advance(60)
        assert await scheduler.run_due() == 1
    assert len(await jobs_of(storage)) == 3


MINUTE = 60_000


@pytest.mark.parametrize(("policy", "expected"), [
    ("latest", [START + 20 * MINUTE]),
    ("all", [START + 10 * MINUTE, START + 15 * MINUTE, START + 20 * MINUTE]),
    ("none", []),
])
async def test_catch_up_after_downtime(storage: Storage, policy: str,
                                       expected: list[int]) -> None:
    clock, svc, scheduler = services(storage)
    made = await svc.create(ADMIN, PROJECT, {
        "spider": "books", "every": "5m", "overlap": "allow", "catch_up": policy,
        "catch_up_max": 3})
    clock.advance(22 * 60)  # down through the ticks at 5, 10, 15 and 20 minutes
    await scheduler.run_due()
    assert [m["scheduled_for"] for m in await jobs_of(storage)] == expected
    shown = await svc.get(ADMIN, PROJECT, made["id"])
    assert "missed" in shown["last_outcome"]
    assert shown["next_run_time"] == START + 25 * MINUTE


async def test_nightly_cron_over_both_dst_nights(storage: Storage) -> None:
    spring = (utc_ms(2026, 3, 27, 12), ["03-28 02:30", "03-29 03:00", "03-30 02:30"])
    autumn = (utc_ms(2026, 10, 23, 12), ["10-24 02:30", "10-25 02:30", "10-26 02:30"])
    for project, (start, nights) in enumerate((spring, autumn), PROJECT):
        clock, svc, scheduler = services(storage, start)
        await svc.create(ADMIN, project, {
            "spider": "books", "cron": "30 2 * * *", "tz": "Europe/Madrid",
            "overlap": "allow"})
        for _ in range(3 * 24 * 12):  # three days, looking every five minutes
            clock.advance(300)
            await scheduler.run_due()
        fired = [datetime.datetime.fromtimestamp(m["scheduled_for"] / 1000, MADRID)
                 .strftime("%m-%d %H:%M") for m in await jobs_of(storage, project)]
        assert fired == nights


async def test_pause_resume_delete(storage: Storage) -> None:
    clock, svc, scheduler = services(storage)
    made = await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "10s"})
    paused = await svc.pause(ADMIN, PROJECT, made["id"])
    assert paused["paused"] and paused["next_run"] is None
    clock.advance(60)
    assert await scheduler.run_due() == 0
    resumed = await svc.resume(ADMIN, PROJECT, made["id"])
    assert resumed["next_run_time"] == START + 70_000  # counts from now: no burst
    clock.advance(10)
    assert await scheduler.run_due() == 1
    await svc.delete(ADMIN, PROJECT, made["id"])
    clock.advance(10)
    assert await scheduler.run_due() == 0
    with pytest.raises(errors.NotFound):
        await svc.get(ADMIN, PROJECT, made["id"])


async def test_update_changes_the_timetable(storage: Storage) -> None:
    _clock, svc, _ = services(storage)
    made = await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "10s"})
    changed = await svc.update(ADMIN, PROJECT, made["id"], {
        "cron": "0 3 * * *", "tz": "America/New_York", "every": None, "tags": ["x"]})
    assert changed["cron"] == "0 3 * * *" and changed["every"] is None
    assert changed["next_run"].endswith("03:00:00-04:00") or \
        changed["next_run"].endswith("03:00:00-05:00")
    assert changed["tags"] == ["x"] and changed["spider"] == "books"


async def test_run_now(storage: Storage) -> None:
    _clock, svc, _ = services(storage)
    made = await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "1d"})
    key = await svc.run_now(ADMIN, PROJECT, made["id"])
    with pytest.raises(errors.BadRequest, match="already scheduled"):
        await svc.run_now(ADMIN, PROJECT, made["id"])  # overlap: skip
    (meta,) = await jobs_of(storage)
    assert meta["scheduled_for"] == START and meta["schedule"] == made["id"]
    assert (await svc.get(ADMIN, PROJECT, made["id"]))["last_job"] == key


async def test_racing_schedulers_push_each_tick_once(storage: Storage, db_url: str) -> None:
    other = open_storage(db_url)  # a second connection (pool), as another node has
    await other.open()
    try:
        clock = ManualClock(now_ms=START)
        await Schedules(storage, clock).create(ADMIN, PROJECT, {
            "spider": "books", "every": "1s", "overlap": "allow"})
        nodes = [Scheduler(s, clock) for s in (storage, other, storage, other)]
        for _ in range(20):
            clock.advance(1)
            counts = await asyncio.gather(*(n.run_due() for n in nodes))
            assert sum(counts) == 1
        ticks = [m["scheduled_for"] for m in await jobs_of(storage)]
        assert ticks == [START + 1000 * i for i in range(1, 21)]
    finally:
        await other.close()


async def test_a_recorded_tick_is_never_pushed_again(storage: Storage) -> None:
    _, svc, _ = services(storage)
    made = await svc.create(ADMIN, PROJECT, {"spider": "books", "every": "1s",
                                             "overlap": "allow"})
    found = await storage.get_schedule(PROJECT, made["id"])
    assert found is not None
    tick = START + 1000
    # without the cursor check (as a buggy caller would), the tick's key still refuses
    first = await storage.fire_schedule(PROJECT, made["id"], None, None,
                                        [(tick, new_job(found, tick))], 0, "periodicjobs")
    second = await storage.fire_schedule(PROJECT, made["id"], None, None,
                                         [(tick, new_job(found, tick))], 0, "periodicjobs")
    assert first is not None and first[0].key is not None
    assert second is not None and second[0].key is None
    assert len(await jobs_of(storage)) == 1


@pytest.mark.parametrize(("body", "named"), [
    ({"spider": "books", "cron": "0 3 * *"}, "cron"),
    ({"spider": "books", "cron": "0 25 * * *"}, "cron"),
    ({"spider": "books", "cron": "0 3 * * *", "tz": "Europe/Atlantis"}, "tz"),
    ({"spider": "books", "every": "500ms"}, "every"),
    ({"spider": "books", "every": "0s"}, "every"),
    ({"spider": "books"}, "cron"),
    ({"spider": "books", "every": "1h", "cron": "0 3 * * *"}, "cron, every"),
    ({"spider": "books", "every": "1h", "priority": 5}, "priority"),
    ({"spider": "books", "every": "1h", "priority": "2"}, "priority"),
    ({"spider": "books", "every": "1h", "job_settings": "LOG_LEVEL=INFO"}, "job_settings"),
    ({"spider": "books", "every": "1h", "job_settings": [1]}, "job_settings"),
    ({"spider": "books", "every": "1h", "args": {"a": 1}}, "args"),
    ({"spider": "books", "every": "1h", "overlap": "queue"}, "overlap"),
    ({"spider": "books", "every": "1h", "catch_up": "some"}, "catch_up"),
    ({"spider": "books", "every": "1h", "units": 0}, "units"),
    ({"spider": "books", "every": "1h", "color": "red"}, "unknown field"),
    ({"every": "1h"}, "spider"),
])
async def test_bad_schedules_are_refused_and_nothing_is_created(
    storage: Storage, body: dict[str, Any], named: str
) -> None:
    _, svc, _ = services(storage)
    with pytest.raises(errors.BadRequest, match=f"^{named}"):
        await svc.create(ADMIN, PROJECT, body)
    assert await storage.list_schedules(PROJECT) == []


async def test_spider_unknown_to_every_registered_worker(storage: Storage) -> None:
    _, svc, _ = services(storage)
    await svc.create(ADMIN, PROJECT, {"spider": "anything", "every": "1h"})
    await storage.register_spiders(PROJECT, "worker-1", ["books"])
    await storage.register_spiders(PROJECT, "worker-2", ["authors"])
    with pytest.raises(errors.BadRequest, match=r"^spider: 'ghost'"):
        await svc.create(ADMIN, PROJECT, {"spider": "ghost", "every": "1h"})
    await svc.create(ADMIN, PROJECT, {"spider": "authors", "every": "1h"})
    assert len(await storage.list_schedules(PROJECT)) == 2


async def test_project_keys_reach_their_own_schedules_only(storage: Storage) -> None:
    _, svc, _ = services(storage)
    mine = Principal("p53", project=PROJECT)
    made = await svc.create(mine, PROJECT, {"spider": "books", "every": "1h"})
    assert await storage.projects() == [PROJECT]  # both backends list it alike
    with pytest.raises(errors.Forbidden):
        await svc.create(mine, PROJECT + 1, {"spider": "books", "every": "1h"})
    stranger = Principal("p54", project=PROJECT + 1)
    for call in (svc.get, svc.pause, svc.delete, svc.run_now):
        with pytest.raises(errors.Forbidden):
            await call(stranger, PROJECT, made["id"])
    with pytest.raises(errors.NotFound):  # another project's id is not found in mine
        await svc.get(stranger, PROJECT + 1, made["id"])
