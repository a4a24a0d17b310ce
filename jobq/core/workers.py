"""Workers, leases and the reaper, between HTTP and storage (issue 10).

- `Workers`: register, heartbeat, unregister and list workers; claims by a worker
  (`startjob` with `worker_id`) hold a lease; `startjob?wait=S` long-polls.
- `Wakeups`: wakes long-polling claims of a project when a job may have become
  claimable (a push or update through this process, a requeue, or a PostgreSQL
  notification from another node).
- `Reaper`: one periodic task per server process. It only *proposes*: every expiry is
  decided by the database (`Storage.expire_lease` takes the lease only while it is still
  due), so several nodes never finish or requeue one job twice.

The rules (deadlines, answers, requeue) are `jobq.domain.leases`'s; times come from a
`Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from jobq import errors, metrics
from jobq.core import validation
from jobq.core.credentials import Principal
from jobq.core.queue import JobQueue
from jobq.domain import jobs, leases
from jobq.domain.clock import Clock
from jobq.domain.jobs import JobKey
from jobq.domain.leases import Timeouts, Worker, WorkerInfo
from jobq.domain.records import StartRequest
from jobq.storage.base import Storage

#: worker ids are random hex strings of this many bytes, made by `Workers.register`
WORKER_ID_BYTES = 8
_WORKER_ID = re.compile(f"[0-9a-f]{{{2 * WORKER_ID_BYTES}}}")

log = logging.getLogger(__name__)

#: longest `startjob?wait=` (seconds)
MAX_WAIT = 60.0
#: a long-polling claim also retries this often (seconds), for what no notification
#: announces (a botgroup slot freed on another node)
RECHECK = 5.0
#: most jobs a heartbeat may report, and most slots a worker may declare
MAX_JOBS = 10_000
#: most spider names one worker registers
MAX_SPIDERS = 10_000
#: leases the reaper looks at in one round
REAP_BATCH = 500
#: the reaper's period: this fraction of the worker timeout, at most REAP_MAX (seconds)
REAP_FRACTION = 0.25
REAP_MAX = 1.0
#: ticks a reaper may miss (all nodes together) before leases get a grace period
GRACE_TICKS = 3
#: the reaper counts the workers for /metrics every this many ticks
COUNT_EVERY = 5


class Wakeups:
    """In-process wake-ups of long-polling claims, by project."""

    def __init__(self) -> None:
        self._events: dict[int, asyncio.Event] = {}
        #: the server is stopping: claims no longer wait
        self.closed = False

    def event(self, project: int) -> asyncio.Event:
        """The event the next `notify(project)` sets: take it *before* trying to claim,
        so a push between the try and the wait is not missed."""
        event = self._events.get(project)
        if event is None:
            event = asyncio.Event()
            if self.closed:
                event.set()
            else:
                self._events[project] = event
        return event

    def notify(self, project: int) -> None:
        event = self._events.pop(project, None)
        if event is not None:
            event.set()

    def close(self) -> None:
        """Wake every waiting claim, for good: a stopping server waits for the requests
        in flight, and a long poll would hold it up to MAX_WAIT (then be cut off)."""
        self.closed = True
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    @property
    def waiting_projects(self) -> int:
        return len(self._events)


class Workers:
    def __init__(
        self, storage: Storage, queue: JobQueue, clock: Clock, timeouts: Timeouts,
        wakeups: Wakeups,
    ) -> None:
        self.storage = storage
        self.queue = queue
        self.clock = clock
        self.timeouts = timeouts
        self.wakeups = wakeups

    # -- workers -------------------------------------------------------------------------

    async def register(self, who: Principal, body: Any) -> dict[str, Any]:
        # who may, before what: a refused caller learns nothing of the body's faults
        if who.job is not None:
            raise errors.Forbidden("a job token cannot register a worker")
        if not who.is_admin and (
            not isinstance(body, dict) or body.get("projects") != [who.project]
        ):
            raise errors.Forbidden(
                f"projects: a project key may register a worker for its project only"
                f" ([{who.project}])"
            )
        info = worker_info(body)
        now = self.clock.now_ms()
        worker = Worker(secrets.token_hex(WORKER_ID_BYTES), info, who.name, now, now,
                        leases.worker_expiry(now, self.timeouts), None)
        await self.storage.register_worker(worker)
        return {"id": worker.worker_id, **self._intervals()}

    def _intervals(self) -> dict[str, float]:
        return {
            "heartbeat_interval": leases.heartbeat_interval(self.timeouts),
            "worker_timeout": self.timeouts.worker_ms / 1000,
            "cancel_timeout": self.timeouts.cancel_ms / 1000,
        }

    async def _owned(self, who: Principal, worker_id: str) -> Worker:
        # an id register() cannot have made names no worker: not worth a query (and a NUL
        # in it is one PostgreSQL refuses)
        worker = await self.storage.get_worker(worker_id) if _WORKER_ID.fullmatch(worker_id) \
            else None
        if worker is None:
            raise errors.NotFound(f"no registered worker {worker_id!r}")
        if not who.is_admin and (who.job is not None or who.name != worker.owner):
            raise errors.Forbidden(f"worker {worker_id} was registered by another key")
        return worker

    async def unregister(self, who: Principal, worker_id: str) -> None:
        await self._owned(who, worker_id)
        if not await self.storage.unregister_worker(worker_id):
            raise errors.NotFound(f"no registered worker {worker_id!r}")

    async def list_workers(self, who: Principal) -> list[dict[str, Any]]:
        who.check_admin()
        now = self.clock.now_ms()
        return [render_worker(w, now) for w in await self.storage.list_workers()]

    async def heartbeat(self, who: Principal, worker_id: str, body: Any) -> dict[str, Any]:
        await self._owned(who, worker_id)
        keys = heartbeat_keys(body)
        answers = await self.storage.heartbeat(
            worker_id, keys, self.clock.now_ms(), self.timeouts)
        if answers is None:
            raise errors.NotFound(f"no registered worker {worker_id!r}")
        return {"id": worker_id, "jobs": [self._answer(a) for a in answers],
                **self._intervals()}

    def _answer(self, answer: leases.JobAnswer) -> dict[str, Any]:
        """A job's heartbeat answer; a `continue` carries a fresh token of the run, so a
        crawl longer than `--token-lifetime` keeps writing with its own run's token."""
        rendered = answer.render()
        if answer.run is not None and answer.run[1] is not None:
            run, lease_id = answer.run
            rendered["auth"] = self.queue.tokens.issue(answer.key, run=run, lease_id=lease_id)
        return rendered

    async def register_spiders(self, who: Principal, worker_id: str, body: Any) -> dict[str, Any]:
        """The spiders the worker can run (its project's `scrapy list`), for each project it
        claims from: they get spider ids, and once workers have registered theirs, runs and
        schedules of any other spider are refused. Replaces what this worker registered."""
        worker = await self._owned(who, worker_id)
        if not worker.info.projects:
            raise errors.BadRequest(
                "projects: register the worker with the projects its spiders belong to")
        names = spider_names(body)
        for project in worker.info.projects:
            for name in names:
                await self.storage.spider_id(project, name, create=True)
            await self.storage.register_spiders(project, worker_id, names)
        return {"id": worker_id, "spiders": names}

    # -- claims ---------------------------------------------------------------------------

    async def start(
        self, who: Principal, project: int, params: dict[str, Any], wait: float
    ) -> dict[str, Any] | None:
        """startjob: by a registered worker (`worker_id`) with a lease, else as before;
        with `wait`, until a job is claimed or `wait` seconds passed."""
        params = validation.expect_object(params, "start parameters")
        worker_id = params.get("worker_id")
        if worker_id is None:
            if wait <= 0:  # no long poll: no wake-up event, no deadline
                return await self.queue.start(who, project, params)
            return await self._wait_for(project, wait,
                                        lambda: self.queue.start(who, project, params))
        if not isinstance(worker_id, str) or not worker_id:
            raise errors.BadRequest("worker_id: expected a worker id string from POST workers")
        who.check_project(project)
        worker = await self._owned(who, worker_id)
        if worker.info.projects and project not in worker.info.projects:
            raise errors.BadRequest(
                f"worker_id: worker {worker_id} did not register for project {project}")
        botgroup = params.get("botgroup")
        if botgroup is not None:
            validation.name(botgroup, "botgroup")
        claim_params = {"worker": worker.info.name, **params}

        async def claim() -> dict[str, Any] | None:
            now = self.clock.now_ms()
            policy = leases.policy_of(await self.storage.get_settings(project))
            lease = leases.new_lease(worker_id, secrets.token_hex(8), now, self.timeouts,
                                     policy)
            # the lease id in the job's metadata names this run for its token
            params = {**claim_params, "lease_id": lease.lease_id}
            claimed = await self.storage.start_leased_job(
                project, StartRequest(params, botgroup), who.name, lease)
            if claimed is None:
                return None
            key, meta = claimed
            return {**meta, "key": str(key), "auth": self.queue.tokens.issue_for_run(key, meta)}

        return await self._wait_for(project, wait, claim)

    async def _wait_for(self, project: int, wait: float, claim: Any) -> dict[str, Any] | None:
        # the wait is real time (asyncio's timeouts), so its deadline is too: measured on
        # an injected clock, a poll would never end while that clock stands still
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            event = self.wakeups.event(project)
            job: dict[str, Any] | None = await claim()
            left = deadline - loop.time()
            if job is not None or left <= 0 or self.wakeups.closed:
                return job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(left, RECHECK))


def worker_info(body: Any) -> WorkerInfo:
    obj = validation.expect_object(body, "body")
    known = {"name", "host", "slots", "botgroups", "projects", "version"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise errors.BadRequest(f"body: unknown field {unknown[0]!r} (expected {sorted(known)})")
    name = validation.name(obj.get("name"), "name")
    host = validation.name(obj.get("host", ""), "host") if obj.get("host") else ""
    version = validation.name(obj["version"], "version") if obj.get("version") else ""
    slots = obj.get("slots", 1)
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= MAX_JOBS:
        raise errors.BadRequest(f"slots: expected an integer from 1 to {MAX_JOBS}")
    groups = obj.get("botgroups") or []
    if not isinstance(groups, list):
        raise errors.BadRequest("botgroups: expected a list of names")
    botgroups = tuple(validation.name(g, f"botgroups[{i}]") for i, g in enumerate(groups))
    projects = obj.get("projects") or []
    if not isinstance(projects, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p <= jobs.MAX_ID
        for p in projects
    ):
        raise errors.BadRequest("projects: expected a list of project ids")
    return WorkerInfo(name, host, slots, botgroups, tuple(projects), version)


def spider_names(body: Any) -> list[str]:
    obj = validation.expect_object(body, "body")
    unknown = sorted(set(obj) - {"spiders"})
    if unknown:
        raise errors.BadRequest(f"body: unknown field {unknown[0]!r} (expected 'spiders')")
    raw = obj.get("spiders")
    if not isinstance(raw, list):
        raise errors.BadRequest("spiders: expected a list of spider names")
    if len(raw) > MAX_SPIDERS:
        raise errors.BadRequest(f"spiders: at most {MAX_SPIDERS} names")
    return list(dict.fromkeys(validation.name(n, f"spiders[{i}]") for i, n in enumerate(raw)))


def heartbeat_keys(body: Any) -> list[JobKey]:
    obj = validation.expect_object(body if body is not None else {}, "body")
    unknown = sorted(set(obj) - {"jobs"})
    if unknown:
        raise errors.BadRequest(f"body: unknown field {unknown[0]!r} (expected 'jobs')")
    raw = obj.get("jobs", [])
    if not isinstance(raw, list):
        raise errors.BadRequest("jobs: expected a list of job keys")
    if len(raw) > MAX_JOBS:
        raise errors.BadRequest(f"jobs: at most {MAX_JOBS} keys")
    return [JobKey.parse(k, f"jobs[{i}]") for i, k in enumerate(raw)]


def render_worker(worker: Worker, now_ms: int) -> dict[str, Any]:
    info = worker.info
    return {
        "id": worker.worker_id, "name": info.name, "host": info.host, "slots": info.slots,
        "botgroups": list(info.botgroups), "projects": list(info.projects),
        "version": info.version, "registered_time": worker.registered_ms,
        "last_heartbeat": worker.last_heartbeat_ms,
        "state": "lost" if worker.lost_ms is not None else "active",
        "lost_time": worker.lost_ms,
        "jobs": [str(k) for k in worker.jobs],
    }


class Reaper:
    """Finishes or requeues the jobs of lost workers, times out stops, asks for a stop
    past `max_runtime`. One per server process; the database decides each expiry."""

    def __init__(self, storage: Storage, clock: Clock, timeouts: Timeouts,
                 wakeups: Wakeups) -> None:
        self.storage = storage
        self.clock = clock
        self.timeouts = timeouts
        self.wakeups = wakeups
        self.period = min(REAP_MAX, timeouts.worker_ms / 1000 * REAP_FRACTION)
        #: what this process did, by outcome (for logs and tests)
        self.outcomes: dict[str, int] = {}
        self.ticks = 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                if self.ticks % COUNT_EVERY == 1:
                    await self.count_workers()
            except errors.JobqError as exc:
                log.warning("reaper: %s", exc.message)
            except Exception:
                log.exception("reaper tick failed")
            await asyncio.sleep(self.period)

    async def count_workers(self) -> None:
        found = await self.storage.list_workers()
        lost = sum(1 for w in found if w.lost_ms is not None)
        metrics.WORKERS.labels("active").set(len(found) - lost)
        metrics.WORKERS.labels("lost").set(lost)

    async def tick(self) -> None:
        self.ticks += 1
        now = self.clock.now_ms()
        gap = round(self.period * 1000 * GRACE_TICKS)
        if await self.storage.reaper_tick(now, max(gap, 1), self.timeouts):
            # at this process's first tick a gap only means no server ran meanwhile (a
            # start, a restart of every node); later, the database was out of reach
            level = logging.INFO if self.ticks == 1 else logging.WARNING
            log.log(level, "reaper: no tick for over %d ms (database out of reach or no server"
                    " ran): every worker gets a whole worker timeout to heartbeat again", gap)
            return
        policies: dict[int, leases.LostPolicy] = {}
        for lease in await self.storage.due_leases(now, REAP_BATCH):
            kind = leases.due(lease, now)
            if kind is leases.Due.TIME_LIMIT:
                await self.storage.request_stop(lease, leases.time_limit_stop(now, self.timeouts),
                                                now)
                continue
            project = lease.key.project
            if project not in policies:
                policies[project] = leases.policy_of(await self.storage.get_settings(project))
            outcome = await self.storage.expire_lease(lease, policies[project], now)
            if outcome is None:
                continue
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            metrics.LEASE_OUTCOMES.labels(outcome).inc()
            log.info("reaper: job %s of worker %s: %s", lease.key, lease.worker_id, outcome,
                     extra={"action": "lease_expired", "job_key": str(lease.key),
                            "outcome": outcome})
            if outcome == "requeued":
                self.wakeups.notify(project)


class NotifyingStorage:
    """Behaves as the storage it wraps (typed as `Storage` where it is used), and wakes the
    long-polling claims of a project after a push, update, cancel or scheduled run of it
    succeeded: a job may have become pending, or a botgroup slot free."""

    _WAKING = frozenset({"push", "update", "cancel", "fire_schedule"})

    def __init__(self, inner: object, wakeups: Wakeups) -> None:
        self._inner = inner
        self._wakeups = wakeups

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._WAKING:
            if callable(attr):
                setattr(self, name, attr)  # found once: a method never changes
            return attr

        async def waking(project: int, *args: Any, **kwargs: Any) -> Any:
            result = await attr(project, *args, **kwargs)
            self._wakeups.notify(project)
            return result

        setattr(self, name, waking)
        return waking


__all__: Sequence[str] = ("NotifyingStorage", "Reaper", "Wakeups", "Workers")
