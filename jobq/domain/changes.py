"""What each write does to a job, decided once for both backends: the backends read the
rows, call these and store what they return (`Change`, `NewRow`), nothing more.

Positions come from the backend (`take`: the next position of the project, handed out
under its write lock) and so do their times (`ts_of`: PostgreSQL's late-locking batches
learn a position only at commit and pass the time of now instead; see `_pg_tx`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jobq.domain import jobs
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobUpdate, NewJob, Pushed

Take = Callable[[], int]
TimeOf = Callable[[int], int]


def encode(value: Any) -> str:
    """JSON as stored (metadata, tags, settings)."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class Change:
    """A job's new metadata; with `state`, also the queue it moves to at `position`."""

    meta: dict[str, Any]
    state: State | None = None
    position: int | None = None
    tags_changed: bool = False

    @property
    def moved_to(self) -> State | None:
        """The queue the job moves to (None: it stays; a same-state update has no
        position)."""
        return self.state if self.position is not None else None

    @property
    def stored_meta(self) -> str:
        return encode(jobs.stored_form(self.meta))

    @property
    def stored_counters(self) -> str | None:
        """The counters column: always written with the metadata (see `stored_counters`)."""
        return stored_counters(self.meta)

    @property
    def stored_tags(self) -> str | None:
        """The tags column when `tags_changed` (None: no tags)."""
        tags = jobs.tags_of(self.meta)
        return encode(tags) if tags else None


def stored_counters(meta: dict[str, Any]) -> str | None:
    """The `counters` column of a job: its outcome counters (`jobs.outcome_counters`) as
    JSON, kept with the metadata they come from so that a list reads them as cheaply as
    the tags; None without scrapystats. Kept whatever the state: a row shows them only
    for a finished job (`jobq.core.queue.render_row`), so a state change never touches
    them."""
    counters = jobs.outcome_counters(meta)
    return None if counters is None else encode(counters)


def keeps_counters(fields: dict[str, Any]) -> bool:
    """Whether merging `fields` into a job's metadata leaves its counters as they are (the
    one-statement writes of PostgreSQL append a patch without reading the metadata, so the
    counters column can only stay right through patches without `scrapystats`)."""
    return "scrapystats" not in fields


# -- push ------------------------------------------------------------------------------


@dataclass(slots=True)
class PushPlan:
    """Which lines of a push are created: `refused[i]` is None for a line created, else
    the active job with its `unique` value (a key) or the earlier line (its index)."""

    refused: list[JobKey | int | None]
    #: lines created per spider id
    per_spider: dict[int, int]


def plan_push(
    new_jobs: Sequence[NewJob], spider_ids: Mapping[str, int], active: Mapping[str, JobKey]
) -> PushPlan:
    """`active`: the active (pending or running) jobs of the project by `unique` value."""
    refused: list[JobKey | int | None] = []
    unique_line: dict[str, int] = {}
    per_spider: dict[int, int] = {}
    for index, job in enumerate(new_jobs):
        if job.unique is not None:
            earlier = unique_line.get(job.unique)
            dup = earlier if earlier is not None else active.get(job.unique)
            if dup is not None:
                refused.append(dup)
                continue
            if job.state in (State.PENDING, State.RUNNING):
                unique_line[job.unique] = index
        refused.append(None)
        sid = spider_ids[job.spider]
        per_spider[sid] = per_spider.get(sid, 0) + 1
    return PushPlan(refused, per_spider)


#: the columns of a new job's row, in `NewRow.values` order
NEW_ROW_COLUMNS = ("spider_id", "job_no", "state", "position", "pending_position",
                   "running_position", "finished_position", "deleted_position", "priority",
                   "unique_key", "tags", "meta", "counters")


def new_columns(job: NewJob, actor: str) -> tuple[str | None, str, str | None]:
    """The tags, metadata and counters columns of a new job (`NEW_ROW_COLUMNS`' last three).
    They need neither its position nor its key: the fields `jobs.stamp_new` takes them
    for (project, times) are the derived ones that `jobs.stored_form` leaves out, so a
    backend may compute these before it takes its write lock (SQLite: before the writer
    thread)."""
    meta = jobs.stamp_new(job.meta, 0, job.spider, job.state, 0, actor)
    return (encode(job.tags) if job.tags else None, encode(jobs.stored_form(meta)),
            stored_counters(meta))


def new_rows(
    project: int, new_jobs: Sequence[NewJob], plan: PushPlan, spider_ids: Mapping[str, int],
    last_no: Mapping[int, int], take: Take, actor: str,
    columns: Sequence[tuple[str | None, str, str | None]] | None = None,
) -> tuple[list[tuple[Any, ...]], list[Pushed]]:
    """The rows a push inserts (`NEW_ROW_COLUMNS`) and the answer of each line, given the
    last job number each spider had reserved for this push (`plan.per_spider` numbers);
    `columns`: each line's `new_columns`, when computed before."""
    if columns is None:
        columns = [new_columns(job, actor) if dup is None else (None, "", None)
                   for job, dup in zip(new_jobs, plan.refused, strict=True)]
    next_no = {sid: last_no[sid] - n + 1 for sid, n in plan.per_spider.items()}
    rows: list[tuple[Any, ...]] = []
    answers: list[Pushed] = []
    keys: list[JobKey | None] = []
    for job, dup, static in zip(new_jobs, plan.refused, columns, strict=True):
        if dup is not None:
            keys.append(None)
            answers.append(Pushed(None, duplicate_of=keys[dup] if isinstance(dup, int)
                                  else dup))
            continue
        sid = spider_ids[job.spider]
        job_no = next_no[sid]
        next_no[sid] = job_no + 1
        key = JobKey(project, sid, job_no)
        keys.append(key)
        answers.append(Pushed(key))
        position = take()
        state = job.state
        rows.append((sid, job_no, int(state), position,
                     position if state is State.PENDING else None,
                     position if state is State.RUNNING else None,
                     position if state is State.FINISHED else None,
                     position if state is State.DELETED else None,
                     job.priority, job.unique, *static))
    return rows, answers


# -- state changes and metadata ----------------------------------------------------------


# A claim or an update changes a job's metadata by a patch that does not depend on the
# job (`claim_patch`, `update_patch`): the metadata after it is `meta.update(patch)`. So
# PostgreSQL can claim or update a job in one statement, appending the stored form of the
# patch to the stored text (JSON readers keep the last of repeated names, in the place of
# the first, exactly as `dict.update` does); see `_pg_tx.OneTrip`.


def claim_patch(params: dict[str, Any], ts: int, actor: str) -> dict[str, Any]:
    """What startjob's claim writes into the metadata of the job it claims (at `ts`)."""
    patch: dict[str, Any] = {}
    jobs.merge_fields(patch, params)
    patch["_shub_worker"] = params.get("worker", actor)
    jobs.enter_state(patch, State.RUNNING, ts, actor)
    return patch


def claimed(meta: dict[str, Any], params: dict[str, Any], take: Take, ts_of: TimeOf,
            actor: str) -> Change:
    """startjob's claim of a pending job: merge its parameters, move it to running."""
    position = take()
    meta.update(claim_patch(params, ts_of(position), actor))
    return Change(meta, State.RUNNING, position, "tags" in params)


def update_patch(update: JobUpdate, entered: State | None, ts: int,
                 actor: str) -> dict[str, Any]:
    """What an update line writes into the metadata of a job; `entered`: the state the job
    moves to (None: it stays where it is)."""
    patch: dict[str, Any] = {}
    jobs.merge_fields(patch, update.fields)
    if entered is not None:
        jobs.enter_state(patch, entered, ts, actor)
    return patch


def updated(prev: State, update: JobUpdate, named: str | None, meta: dict[str, Any],
            take: Take, ts_of: TimeOf, actor: str) -> Change | None:
    """One job of an update line (`named`: the line, when it names the job by its key);
    None when the job is skipped (see `jobs.update_target`)."""
    target = jobs.update_target(prev, update.state, named)
    if target is None:
        return None
    change = Change(meta, target, None, "tags" in update.fields)
    if target is prev:
        meta.update(update_patch(update, None, 0, actor))
    else:
        change.position = take()
        meta.update(update_patch(update, target, ts_of(change.position), actor))
    return change


def cancelled(meta: dict[str, Any], state: State, take: Take, ts_of: TimeOf, now_ms: int,
              actor: str) -> Change:
    """A cancelled job: a pending one finishes, a running one records the request."""
    position = take() if state is State.PENDING else None
    ts = ts_of(position) if position is not None else now_ms
    return Change(meta, jobs.cancel(meta, state, ts, actor), position)


def fields_set(meta: dict[str, Any], fields: dict[str, Any]) -> Change:
    jobs.merge_fields(meta, fields)
    return Change(meta, tags_changed="tags" in fields)


def field_deleted(meta: dict[str, Any], name: str) -> Change | None:
    """None when there is nothing to write (no such field, or the server's own)."""
    if name in jobs.SERVER_FIELDS or name not in meta:
        return None
    del meta[name]
    return Change(meta, tags_changed=name == "tags")


def settings_merged(
    settings: dict[str, Any], fields: dict[str, Any], remove: Sequence[str]
) -> tuple[str, list[str] | None]:
    """The project's new settings (as stored) and, when the `botgroups` setting was
    written, the botgroups the project is now in."""
    settings.update(fields)
    for name in remove:
        settings.pop(name, None)
    botgroups = None
    if "botgroups" in fields or "botgroups" in remove:
        botgroups = list(dict.fromkeys(settings.get("botgroups") or ()))
    return encode(settings), botgroups
