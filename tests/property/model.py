"""A plain in-memory model of the JobQ rules, written from the protocol spec,
deliberately without importing anything from `jobq`.

It knows projects, spiders (ids by order of first use), jobs (numbers per spider),
states and the allowed transitions, the order of each queue (the order in which jobs
entered their current state), claims (priority, then oldest), `unique`, cancel, spider-key
updates, removal (DELETE jobs/K) and the `stop` cursor. Time is a logical clock: `tick`
grows by one every time a job enters a state, so "entered earlier" is "smaller tick".
The model never knows the server's timestamps; the tests compare keys, states and order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

LISTABLE = ("pending", "running", "finished")
STATES = (*LISTABLE, "deleted")
ACTIVE = ("pending", "running")

#: pending→running→finished→deleted, pending→finished, any→deleted, a state to itself
ALLOWED = {
    "pending": {"pending", "running", "finished", "deleted"},
    "running": {"running", "finished", "deleted"},
    "finished": {"finished", "deleted"},
    "deleted": {"deleted"},
}

#: who moved a job into a state
ACTOR_FIELD = {
    "pending": "scheduled_by",
    "running": "started_by",
    "finished": "completed_by",
    "deleted": "deleted_by",
}

LIST_COUNT = 1000
SUMMARY_COUNT = 5


class ModelError(Exception):
    """What the model expects jobq to refuse."""


class Conflict(ModelError):
    """A job-key update asks for a transition that is not allowed (nothing changes)."""


class BadRequest(ModelError):
    """E.g. `stop` names a job that never was in the listed queue(s)."""


class NotFound(ModelError):
    """E.g. DELETE jobs/K for a job that does not exist (or was removed already)."""


@dataclass
class Job:
    project: int
    spider_id: int
    number: int
    spider: str
    state: str
    priority: int
    unique: str | None
    #: metadata with values the model knows exactly (no times)
    meta: dict[str, Any]
    #: state -> tick at which the job (last) entered it
    entered: dict[str, int] = field(default_factory=dict)
    #: DELETE jobs/K: gone from everywhere, but `stop` still finds it
    removed: bool = False
    cancel_requested: bool = False

    @property
    def key(self) -> str:
        return f"{self.project}/{self.spider_id}/{self.number}"

    @property
    def tick(self) -> int:
        """When the job entered its current state: its place in that queue."""
        return self.entered[self.state]

    @property
    def tags(self) -> list[str] | None:
        tags = self.meta.get("tags")
        return list(tags) if isinstance(tags, list) and tags else None

    def time_fields(self) -> set[str]:
        """Metadata fields whose value is a server time (the model knows only that they
        are there)."""
        names = {f"{s}_time" for s in self.entered}
        if self.cancel_requested:
            names.add("cancel_requested_time")
        return names

    def full_meta(self) -> dict[str, Any]:
        """The whole metadata except the time-valued fields."""
        return {"project": self.project, "spider": self.spider, "state": self.state,
                **self.meta}


@dataclass
class Project:
    spiders: dict[str, int] = field(default_factory=dict)
    last_job_no: dict[int, int] = field(default_factory=dict)
    #: every job ever created, removed ones included, by key
    jobs: dict[str, Job] = field(default_factory=dict)

    def spider_id(self, name: str) -> int:
        if name not in self.spiders:
            self.spiders[name] = len(self.spiders) + 1
        return self.spiders[name]

    def live(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.removed]

    def find(self, key: str) -> Job | None:
        job = self.jobs.get(key)
        return job if job is not None and not job.removed else None


class Model:
    def __init__(self) -> None:
        self.tick = 0
        self.projects: dict[int, Project] = {}

    def project(self, pid: int) -> Project:
        return self.projects.setdefault(pid, Project())

    def _enter(self, job: Job, state: str, actor: str) -> None:
        self.tick += 1
        job.state = state
        job.entered[state] = self.tick
        job.meta[ACTOR_FIELD[state]] = actor

    # -- writes -------------------------------------------------------------------------

    def push(self, pid: int, lines: list[dict[str, Any]], actor: str) -> list[dict[str, Any]]:
        """The answer lines: `{"key", "running"}` for a created job (a job token comes
        back exactly when it starts running), or the refusal of a duplicate `unique`."""
        proj = self.project(pid)
        answers: list[dict[str, Any]] = []
        for line in lines:
            sid = proj.spider_id(line["spider"])  # the name is used, even if refused
            unique = line.get("unique")
            if unique is not None and any(
                j.unique == unique and j.state in ACTIVE for j in proj.live()
            ):
                answers.append(
                    {"error": f"Active job exists with key {unique}", "request": line}
                )
                continue
            number = proj.last_job_no.get(sid, 0) + 1
            proj.last_job_no[sid] = number
            state = line.get("state", "pending")
            meta = {k: v for k, v in line.items() if k not in ("state", "unique")}
            meta.setdefault("priority", 2)
            meta.setdefault("units", 1)
            job = Job(pid, sid, number, line["spider"], state, meta["priority"], unique, meta)
            self._enter(job, state, actor)
            proj.jobs[job.key] = job
            answers.append({"key": job.key, "running": state == "running"})
        return answers

    def start(self, pid: int, params: dict[str, Any], actor: str) -> Job | None:
        proj = self.project(pid)
        pending = [j for j in proj.live() if j.state == "pending"]
        if not pending:
            return None
        job = min(pending, key=lambda j: (-j.priority, j.tick))
        job.meta.update(params)
        job.meta["_shub_worker"] = params.get("worker", actor)
        self._enter(job, "running", actor)
        return job

    def update(self, pid: int, lines: list[dict[str, Any]], actor: str) -> list[dict[str, str]]:
        """All lines or none: a job-key line with a forbidden transition raises Conflict
        and leaves the model as it was."""
        saved = copy.deepcopy(self.projects), self.tick
        try:
            return self._update(pid, lines, actor)
        except Conflict:
            self.projects, self.tick = saved
            raise

    def _update(self, pid: int, lines: list[dict[str, Any]], actor: str) -> list[dict[str, str]]:
        proj = self.project(pid)
        done: list[dict[str, str]] = []
        for line in lines:
            key: str = line["key"]
            fields = {k: v for k, v in line.items() if k not in ("key", "state")}
            by_job = key.count("/") == 2
            if by_job:
                job = proj.find(key)
                targets = [job] if job is not None else []
            else:
                sid = int(key.split("/")[1])
                targets = sorted(
                    (j for j in proj.live() if j.spider_id == sid and j.state in LISTABLE),
                    key=lambda j: (LISTABLE.index(j.state), j.tick),
                )
            for job in targets:
                prev = job.state
                state = line.get("state", prev)
                if state not in ALLOWED[prev]:
                    if by_job:
                        raise Conflict(f"{job.key}: {prev} -> {state}")
                    continue
                job.meta.update(fields)
                if state != prev:
                    self._enter(job, state, actor)
                done.append({"key": job.key, "prevstate": prev})
        return done

    def cancel(self, pid: int, keys: list[str] | None, limit: int | None, actor: str) -> int:
        """Cancel the given jobs (each once), or the `limit` oldest pending ones."""
        proj = self.project(pid)
        if keys is None:
            pending = sorted((j for j in proj.live() if j.state == "pending"),
                             key=lambda j: j.tick)
            targets = pending[:limit]
        else:
            found = (proj.find(k) for k in dict.fromkeys(keys))
            targets = [j for j in found if j is not None and j.state in ACTIVE]
        for job in targets:
            if job.state == "pending":
                job.meta["close_reason"] = "cancelled"
                job.meta["cancelled_by"] = actor
                self._enter(job, "finished", actor)
            else:
                job.cancel_requested = True
                job.meta.setdefault("cancelled_by", actor)
        return len(targets)

    def set_meta(self, pid: int, key: str, fields: dict[str, Any]) -> None:
        """POST jobs/K: merge fields into the metadata (tags included: filters follow)."""
        job = self.project(pid).find(key)
        if job is None:
            raise NotFound(key)
        job.meta.update(fields)

    def delete_meta_field(self, pid: int, key: str, name: str) -> None:
        """DELETE jobs/K/FIELD (only fields a client may set; `priority` is the
        metadata field, the job keeps its place in the claim order)."""
        job = self.project(pid).find(key)
        if job is None:
            raise NotFound(key)
        job.meta.pop(name, None)

    def remove(self, pid: int, key: str) -> None:
        job = self.project(pid).find(key)
        if job is None:
            raise NotFound(key)
        job.removed = True

    # -- reads ---------------------------------------------------------------------------

    def _matching(
        self, pid: int, states: tuple[str, ...], spiders: tuple[str, ...],
        has_tags: tuple[str, ...], lacks_tags: tuple[str, ...], after: int | None = None,
    ) -> list[Job]:
        proj = self.project(pid)
        wanted = {proj.spiders[s] for s in spiders if s in proj.spiders}
        found = []
        for job in proj.live():
            tags = set(job.tags or ())
            if (job.state in states
                    and (not spiders or job.spider_id in wanted)
                    and (not has_tags or tags & set(has_tags))
                    and not tags & set(lacks_tags)
                    and (after is None or job.tick > after)):
                found.append(job)
        return sorted(found, key=lambda j: j.tick, reverse=True)

    def list(
        self, pid: int, states: tuple[str, ...] = ("finished",), spiders: tuple[str, ...] = (),
        has_tags: tuple[str, ...] = (), lacks_tags: tuple[str, ...] = (),
        stop: str | None = None, count: int | None = None, start: int = 0,
    ) -> list[Job]:
        after = None
        if stop is not None:
            # the cursor: when the stop job last entered one of the listed queues, also
            # if it moved on or was removed since
            cursor = self.project(pid).jobs.get(stop)
            entries = [cursor.entered[s] for s in states if cursor and s in cursor.entered]
            if not entries:
                raise BadRequest(f"stop: {stop} was never in {states}")
            after = max(entries)
        found = self._matching(pid, states, spiders, has_tags, lacks_tags, after)
        count = LIST_COUNT if count is None else count
        return found[start:start + count]

    def count(
        self, pid: int, states: tuple[str, ...] = ("finished",), spiders: tuple[str, ...] = (),
        has_tags: tuple[str, ...] = (), lacks_tags: tuple[str, ...] = (),
    ) -> int:
        return len(self._matching(pid, states, spiders, has_tags, lacks_tags))

    def summary(
        self, pid: int, spider_id: int | None, state: str | None, count: int | None = None,
        start: int = 0,
    ) -> list[tuple[str, int, list[Job]]]:
        """(queue name, jobs in it, the rows shown) per queue."""
        count = SUMMARY_COUNT if count is None else count
        answer = []
        for queue in (state,) if state is not None else LISTABLE:
            jobs = sorted(
                (j for j in self.project(pid).live()
                 if j.state == queue and (spider_id is None or j.spider_id == spider_id)),
                key=lambda j: j.tick, reverse=True,
            )
            answer.append((queue, len(jobs), jobs[start:start + count]))
        return answer

    def jobsummary(self, pid: int, keys: list[str]) -> list[Job]:
        """One job per key found (deleted ones too; removed ones are gone)."""
        proj = self.project(pid)
        return [job for k in keys if (job := proj.find(k)) is not None]

    # -- what the tests draw from ----------------------------------------------------------

    def keys(self, pid: int) -> list[str]:
        """Every job key the project ever had, removed jobs included."""
        return list(self.project(pid).jobs)

    def spider_ids(self, pid: int) -> list[int]:
        return list(self.project(pid).spiders.values())
