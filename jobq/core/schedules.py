"""Periodic jobs: managing schedules (`Schedules`) and firing them (`Scheduler`).

## Exactly once per tick, on any number of nodes

Every `jobq serve` process runs one `Scheduler` task. It reads the schedules whose next
tick is due, works out the plan (`jobq.domain.schedules.plan`: which ticks fire under the
catch-up policy, and the next tick after now) and asks storage to commit, in one
transaction, the move of the schedule's `next_tick_ms` from the value it read to the new
one *and* the push of each tick's job. If another node got there first, the
compare-and-set finds another value and nothing is written. The `schedule_ticks` primary
key (schedule, tick) backs it up: a tick is never pushed twice. A node killed mid-way
leaves either the whole transaction or nothing, and the next node to look fires the tick.

The clock is injected: a tick fires when the clock says it is due, and a scheduler late
by seconds still fires it (the catch-up policies only skip ticks older than the newest
due one, or, with `none`, older than `ON_TIME_MS`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import zoneinfo
from typing import Any

from jobq import errors
from jobq.core import app_api, validation
from jobq.core.credentials import Principal
from jobq.domain import jobs
from jobq.domain import schedules as rules
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.records import NewJob
from jobq.domain.schedules import Schedule, ScheduleSpec
from jobq.storage.base import Storage

log = logging.getLogger(__name__)

#: recorded as `scheduled_by` of the jobs a schedule pushes (as on the hosted service)
ACTOR = "periodicjobs"
#: most seconds a scheduler sleeps between looks for due schedules (it wakes earlier
#: when it knows of an earlier tick)
POLL_SECONDS = 1.0
#: most schedules fired in one look
DUE_BATCH = 200

_FIELDS = frozenset({
    "spider", "cron", "tz", "every", "args", "job_settings", "tags", "priority", "units",
    "job_cmd", "overlap", "catch_up", "catch_up_max", "paused", "description",
})
_TIMING = ("cron", "tz", "every")


def _string_map(value: Any, where: str) -> dict[str, str]:
    fields = validation.expect_object(value, where)
    for key, item in fields.items():
        if not isinstance(item, str):
            raise errors.BadRequest(f"{where}.{key}: expected a string")
        validation.no_nul(key, where)
    return dict(fields)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise errors.BadRequest(f"{where}: expected an integer from {low} to {high}")
    return value


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise errors.BadRequest(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def apply_fields(spec: ScheduleSpec, body: dict[str, Any], now_ms: int) -> bool:
    """Check `body`'s fields and set them on `spec`; True when the timetable changed."""
    unknown = set(body) - _FIELDS
    if unknown:
        raise errors.BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "spider" in body:
        spec.spider = validation.name(body["spider"], "spider")
    if "cron" in body and "every" in body and body["cron"] is not None \
            and body["every"] is not None:
        raise errors.BadRequest("cron, every: give one of them, not both")
    if body.get("cron") is not None:
        spec.cron = rules.check_cron(body["cron"])
        spec.every_ms = None
    if "tz" in body:
        spec.tz = rules.parse_zone(body["tz"]).key
    if body.get("every") is not None:
        spec.every_ms = rules.parse_interval(body["every"])
        spec.cron = None
        spec.anchor_ms = now_ms - now_ms % 1000
    if spec.cron is None and spec.every_ms is None:
        raise errors.BadRequest("cron: give a cron expression (cron) or an interval (every)")
    if "args" in body:
        spec.spider_args = _string_map(body["args"] or {}, "args")
    if "job_settings" in body:
        spec.job_settings = validation.expect_object(body["job_settings"] or {}, "job_settings")
    if "tags" in body:
        spec.tags = validation.tags(body["tags"], "tags") or []
    if "priority" in body:
        spec.priority = _int(body["priority"], "priority", jobs.PRIORITY_MIN, jobs.PRIORITY_MAX)
    if "units" in body:
        spec.units = _int(body["units"], "units", 1, validation.MAX_UNITS)
    if "job_cmd" in body:
        cmd = body["job_cmd"]
        if cmd is not None and (not isinstance(cmd, list) or not cmd
                                or not all(isinstance(c, str) for c in cmd)):
            raise errors.BadRequest("job_cmd: expected a non-empty list of strings")
        spec.job_cmd = cmd
    if "overlap" in body:
        spec.overlap = _choice(body["overlap"], "overlap", rules.OVERLAP)
    if "catch_up" in body:
        spec.catch_up = _choice(body["catch_up"], "catch_up", rules.CATCH_UP)
    if "catch_up_max" in body:
        spec.catch_up_max = _int(body["catch_up_max"], "catch_up_max", 1,
                                 rules.CATCH_UP_MAX_LIMIT)
    if "description" in body:
        if not isinstance(body["description"], str) or len(body["description"]) > 1000:
            raise errors.BadRequest("description: expected a string of at most 1000 characters")
        spec.description = validation.no_nul(body["description"], "description")
    return any(name in body for name in _TIMING)


def job_line(schedule: Schedule, tick_ms: int) -> dict[str, Any]:
    """The push line of a schedule's job for one tick."""
    spec = schedule.spec
    line: dict[str, Any] = {"spider": spec.spider, "priority": spec.priority,
                            "units": spec.units}
    if spec.spider_args:
        line["spider_args"] = dict(spec.spider_args)
    if spec.job_settings:
        line["job_settings"] = dict(spec.job_settings)
    if spec.tags:
        line["tags"] = list(spec.tags)
    if spec.job_cmd:
        line["job_cmd"] = list(spec.job_cmd)
    line["schedule"] = schedule.schedule_id
    line["scheduled_for"] = tick_ms
    if spec.overlap == "skip":
        # the queue refuses a second active job with this value: that is the overlap rule
        line["unique"] = f"{ACTOR}:{schedule.schedule_id}"
    return line


def new_job(schedule: Schedule, tick_ms: int) -> NewJob:
    return validation.new_job(job_line(schedule, tick_ms), f"schedule {schedule.schedule_id}")


def _iso(ms: int | None, tz: str) -> str | None:
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, zoneinfo.ZoneInfo(tz)).isoformat()


def render(schedule: Schedule) -> dict[str, Any]:
    spec = schedule.spec
    return {
        "id": schedule.schedule_id, "project": schedule.project, "spider": spec.spider,
        "cron": spec.cron, "tz": spec.tz,
        "every": None if spec.every_ms is None else rules.format_interval(spec.every_ms),
        "when": spec.when(), "args": spec.spider_args, "job_settings": spec.job_settings,
        "tags": spec.tags, "priority": spec.priority, "units": spec.units,
        "job_cmd": spec.job_cmd, "overlap": spec.overlap, "catch_up": spec.catch_up,
        "catch_up_max": spec.catch_up_max, "description": spec.description,
        "paused": schedule.paused, "next_run_time": schedule.next_tick_ms,
        "next_run": _iso(None if schedule.paused else schedule.next_tick_ms, spec.tz),
        "last_run_time": schedule.last_tick_ms, "last_job": schedule.last_job,
        "last_outcome": schedule.last_outcome, "last_fired_time": schedule.last_fired_ms,
        "created_time": schedule.created_ms, "updated_time": schedule.updated_ms,
    }


class Schedules:
    """The schedules of a project, behind the same keys and project isolation as JobQ."""

    def __init__(self, storage: Storage, clock: Clock = SYSTEM) -> None:
        self.storage = storage
        self.clock = clock

    async def _get(self, who: Principal, project: int, schedule_id: int) -> Schedule:
        who.check_project(project)
        found = await self.storage.get_schedule(project, schedule_id)
        if found is None:
            raise errors.NotFound(f"schedule {schedule_id} of project {project} not found")
        return found

    async def _check_spider(self, project: int, spider: str) -> None:
        app_api.check_known_spider(spider, await self.storage.registered_spiders(project))

    async def create(self, who: Principal, project: int, body: Any) -> dict[str, Any]:
        who.check_project(project)
        fields = validation.expect_object(body, "body")
        if "spider" not in fields:
            raise errors.BadRequest("spider: this field is required")
        now = self.clock.now_ms()
        spec = ScheduleSpec(spider="")
        apply_fields(spec, fields, now)
        await self._check_spider(project, spec.spider)
        paused = fields.get("paused", False)
        if not isinstance(paused, bool):
            raise errors.BadRequest("paused: expected true or false")
        created = await self.storage.create_schedule(
            project, spec, paused, rules.next_tick(spec, now))
        return render(created)

    async def list(self, who: Principal, project: int) -> list[dict[str, Any]]:
        who.check_project(project)
        return [render(s) for s in await self.storage.list_schedules(project)]

    async def get(self, who: Principal, project: int, schedule_id: int) -> dict[str, Any]:
        found = await self._get(who, project, schedule_id)
        answer = render(found)
        answer["ticks"] = [
            {"tick": t, "fired": f, "job": j, "outcome": o}
            for t, f, j, o in await self.storage.schedule_ticks(schedule_id, 20)
        ]
        return answer

    async def update(
        self, who: Principal, project: int, schedule_id: int, body: Any
    ) -> dict[str, Any]:
        found = await self._get(who, project, schedule_id)
        fields = validation.expect_object(body, "body")
        now = self.clock.now_ms()
        spec = ScheduleSpec.from_json(found.spec.to_json())
        retimed = apply_fields(spec, {k: v for k, v in fields.items() if k != "paused"}, now)
        if "spider" in fields:
            await self._check_spider(project, spec.spider)
        paused = fields.get("paused")
        if paused is not None and not isinstance(paused, bool):
            raise errors.BadRequest("paused: expected true or false")
        resumed = paused is False and found.paused
        updated = await self.storage.update_schedule(
            project, schedule_id, spec=spec, paused=paused,
            next_tick_ms=rules.next_tick(spec, now), set_next=retimed or resumed,
        )
        if updated is None:
            raise errors.NotFound(f"schedule {schedule_id} of project {project} not found")
        return render(updated)

    async def pause(self, who: Principal, project: int, schedule_id: int) -> dict[str, Any]:
        return await self.update(who, project, schedule_id, {"paused": True})

    async def resume(self, who: Principal, project: int, schedule_id: int) -> dict[str, Any]:
        """Ticks that passed while paused do not fire: the next tick counts from now."""
        return await self.update(who, project, schedule_id, {"paused": False})

    async def delete(self, who: Principal, project: int, schedule_id: int) -> None:
        who.check_project(project)
        if not await self.storage.delete_schedule(project, schedule_id):
            raise errors.NotFound(f"schedule {schedule_id} of project {project} not found")

    async def run_now(self, who: Principal, project: int, schedule_id: int) -> str:
        """Push the schedule's job now, outside its timetable (the overlap rule holds)."""
        found = await self._get(who, project, schedule_id)
        outcome = await self.storage.fire_schedule(
            project, schedule_id, None, None, [(None, new_job(found, self.clock.now_ms()))],
            0, ACTOR,
        )
        assert outcome is not None
        (pushed,) = outcome
        if pushed.key is None:
            raise errors.BadRequest(
                f"{found.spec.spider} already scheduled: job {pushed.duplicate_of} of schedule"
                f" {schedule_id} is still pending or running (overlap: skip)")
        return str(pushed.key)


class Scheduler:
    """Fires due schedules; one per server process (see the module docstring)."""

    def __init__(self, storage: Storage, clock: Clock = SYSTEM,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.storage = storage
        self.clock = clock
        self.poll_seconds = poll_seconds

    async def fire(self, schedule: Schedule, now_ms: int) -> int | None:
        """Handle one due schedule; the number of jobs pushed, None when another node
        handled it first."""
        assert schedule.next_tick_ms is not None
        plan = rules.plan(schedule.spec, schedule.next_tick_ms, now_ms)
        firings = [(tick, new_job(schedule, tick)) for tick in plan.fire]
        outcome = await self.storage.fire_schedule(
            schedule.project, schedule.schedule_id, schedule.next_tick_ms,
            plan.next_tick_ms, firings, plan.missed, ACTOR,
        )
        if outcome is None:
            return None
        pushed = sum(1 for p in outcome if p.key is not None)
        log.debug("schedule %d fired %d job(s)", schedule.schedule_id, pushed,
                 extra={"action": "schedule_fired", "schedule": schedule.schedule_id,
                        "pushed": pushed, "missed": plan.missed})
        return pushed

    async def run_due(self) -> int:
        """Fire every due schedule once; returns the jobs pushed."""
        now = self.clock.now_ms()
        total = 0
        for schedule in await self.storage.due_schedules(now, DUE_BATCH):
            try:
                total += await self.fire(schedule, now) or 0
            except (errors.StorageError, errors.StorageFault):
                raise
            except errors.JobqError as exc:  # a stored spec that no longer passes the checks
                log.error("schedule %d cannot fire: %s", schedule.schedule_id, exc.message,
                          extra={"action": "schedule_failed"})
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_due()
                next_due = await self.storage.next_due_ms()
            except (errors.StorageError, errors.StorageFault) as exc:
                log.warning("scheduler: %s", exc.message, extra={"action": "scheduler_error"})
                next_due = None
            except Exception:
                log.exception("scheduler failed", extra={"action": "scheduler_error"})
                next_due = None
            wait = self.poll_seconds
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - self.clock.now_ms()) / 1000))
            # a little jitter, so that nodes do not all ask at the same moment
            await asyncio.sleep(wait + random.uniform(0, 0.05))
