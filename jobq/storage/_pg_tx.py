"""The write operations of the PostgreSQL backend.

Each function runs inside a group-commit transaction of one project (see `_pg_batch`),
which has already locked the project's row (`projects`, `FOR UPDATE` or the upsert that
creates it) and holds it until COMMIT. Every write of a project, on every node, takes
that lock first, so within a project the read-then-write steps below need no further
locking and positions (`Tx.take`) are handed out in commit order. What each write does
to a job is decided in `jobq.domain.changes`, for both backends: these functions read the
rows, call it and store what it returns.

startjob and an update of one job to a state are one statement each (`OneTrip`, run by
`postgres.py` in one round trip). Leased claims (`start_job`) and `update` by job keys
run in *late-locking* transactions instead (`Tx.late`,
see `postgres.py`): the jobs they write are locked (`lock_jobs`, or the claim's `FOR
UPDATE SKIP LOCKED`) and read first, their writes are only collected (`Tx.writes`) and
sent at the end with the project lock, and a position is an offset into the range the
batch takes then (`Tx.take` returns 0, 1, ...). The stored metadata does not depend on
positions (times are derived fields), so nothing but the position columns and the answer
of startjob (`Later`) needs them. Later operations of the batch see the earlier ones'
writes through `Tx.overlay`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg import AsyncConnection, AsyncCursor

from jobq import errors
from jobq.domain import changes, jobs
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import Cancelled, JobUpdate, NewJob, Pushed, StartRequest, Updated
from jobq.storage._pg_sql import Q


@dataclass(slots=True)
class Tx:
    """One transaction of one project, shared by the operations of a batch."""

    conn: AsyncConnection[Any]
    project: int
    now_ms: int
    #: the project's last position, None when the project row does not exist
    last: int | None
    #: spider ids known to be committed (name -> id); read only here
    known_spiders: dict[str, int]
    #: spiders created by this transaction (cached once it commits)
    new_spiders: dict[str, int] = field(default_factory=dict)
    #: a late-locking transaction (see the module docstring)
    late: bool = False
    #: late: positions taken so far (`take` returns offsets into the batch's range)
    taken: int = 0
    #: late: the writes, sent at the end (SQL, parameters, position offset or None)
    writes: list[tuple[str, dict[str, Any], int | None]] = field(default_factory=list)
    #: late: (spider, job) -> (state, stored meta) of the jobs this batch has written
    overlay: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    #: late: net change of this project's running jobs by this batch
    running: int = 0
    #: late: the `lock_jobs` statement (sent at BEGIN) and its rows once read
    locking: AsyncCursor[Any] | None = None
    locked: dict[tuple[int, int], tuple[int, str]] | None = None

    def take(self) -> int:
        """The next position of the project (late: the next offset in the batch's range)."""
        if self.late:
            self.taken += 1
            return self.taken - 1
        if self.last is None:  # pragma: no cover - the batch locks/creates the row first
            raise errors.StorageError("no position: the project row is not locked")
        self.last = jobs.next_position(self.last, self.now_ms)
        return self.last

    def ts(self, position: int) -> int:
        """The time of a position `take` returned (late: now; only derived fields, which
        are not stored, use it before the real position is known)."""
        return self.now_ms if self.late else jobs.ts_of(position)

    async def locked_job(self, key: JobKey) -> list[tuple[Any, ...]]:
        """late: the job `key` (locked at BEGIN) as this batch sees it, unless removed."""
        found = self.overlay.get((key.spider, key.job))
        if found is None:
            if self.locked is None:
                assert self.locking is not None
                rows = await self.locking.fetchall()
                self.locked = {(int(r[0]), int(r[1])): (int(r[2]), r[3]) for r in rows}
            found = self.locked.get((key.spider, key.job))
        if found is None or found[0] == State.REMOVED or key.project != self.project:
            return []
        return [(key.spider, key.job, found[0], found[1])]

    async def one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        cursor = await self.conn.execute(sql, params)
        return await cursor.fetchone()

    async def all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = await self.conn.execute(sql, params)
        return await cursor.fetchall()


async def spider_ids(tx: Tx, names: Sequence[str], create: bool) -> dict[str, int]:
    """Ids of spider names of the project; new names get the next ids, in order."""
    found: dict[str, int] = {}
    missing: list[str] = []
    for name in dict.fromkeys(names):
        sid = tx.new_spiders.get(name) or tx.known_spiders.get(name)
        if sid is not None:
            found[name] = sid
        else:
            missing.append(name)
    if missing:
        rows = await tx.all(Q.spiders_by_names, {"project": tx.project, "names": missing})
        found.update({name: int(sid) for name, sid in rows})
        for name in missing:
            if name in found or not create:
                continue
            row = await tx.one(Q.next_spider_id, {"project": tx.project})
            assert row is not None
            sid = int(row[0])
            await tx.conn.execute(
                Q.insert_spider, {"project": tx.project, "spider": sid, "name": name}
            )
            found[name] = tx.new_spiders[name] = sid
    return found


async def spider_id(tx: Tx, name: str, create: bool) -> int | None:
    return (await spider_ids(tx, [name], create)).get(name)


async def push(tx: Tx, new_jobs: Sequence[NewJob], actor: str) -> list[Pushed]:
    return (await push_many(tx, [(new_jobs, actor)]))[0]


async def push_many(
    tx: Tx, requests: Sequence[tuple[Sequence[NewJob], str]]
) -> list[list[Pushed]]:
    """The pushes of a batch as one: the lines of consecutive requests by one actor are
    planned, numbered and inserted together (a few statements, not a few per request),
    in order, so each gets the answers, numbers and positions it would get pushed after
    the one before it (a `unique` of an earlier request is an active job then)."""
    answers: list[list[Pushed]] = []
    for actor, group in itertools.groupby(requests, key=lambda r: r[1]):
        lines = list(group)
        pushed = await _push(tx, [job for new_jobs, _ in lines for job in new_jobs], actor)
        start = 0
        for new_jobs, _ in lines:
            answers.append(pushed[start:start + len(new_jobs)])
            start += len(new_jobs)
    return answers


async def _push(tx: Tx, new_jobs: Sequence[NewJob], actor: str) -> list[Pushed]:
    project = tx.project
    ids = await spider_ids(tx, [job.spider for job in new_jobs], create=True)
    uniques = list(dict.fromkeys(j.unique for j in new_jobs if j.unique is not None))
    active: dict[str, JobKey] = {}
    if uniques:
        rows = await tx.all(Q.active_with_unique, {"project": project, "uniques": uniques})
        active = {u: JobKey(project, int(sid), int(no)) for u, sid, no in rows}
    plan = changes.plan_push(new_jobs, ids, active)
    last_no: dict[int, int] = {}
    if plan.per_spider:
        rows = await tx.all(Q.take_job_numbers, {
            "project": project, "spiders": list(plan.per_spider),
            "counts": list(plan.per_spider.values()),
        })
        last_no = {int(sid): int(last) for sid, last in rows}
    new_rows, answers = changes.new_rows(project, new_jobs, plan, ids, last_no, tx.take, actor)
    if new_rows:
        columns = zip(*new_rows, strict=True)  # one list of values per column
        params = dict(zip(changes.NEW_ROW_COLUMNS, map(list, columns), strict=True))
        await tx.conn.execute(Q.insert_jobs, {"project": project, **params})
    return answers


@dataclass(slots=True)
class Later:
    """An answer that needs the batch's first position (late-locking batches)."""

    make: Callable[[int], Any]


async def _store(
    tx: Tx, spider: int, job_no: int, change: changes.Change, prev: State | None = None
) -> None:
    """Write a job's change (`prev`, its state before, is needed in late-locking
    batches)."""
    moved_to = change.moved_to
    stored = change.stored_meta
    params: dict[str, Any] = {
        "meta": stored,
        "counters": change.stored_counters,
        "state": None if moved_to is None else int(moved_to),
        "tags_changed": change.tags_changed,
        "tags": change.stored_tags if change.tags_changed else None,
        "project": tx.project, "spider": spider, "job": job_no,
    }
    position = None if moved_to is None else change.position
    if not tx.late:
        params["position"] = position
        await tx.conn.execute(Q.move_job, params)
        return
    assert prev is not None
    new = prev if moved_to is None else moved_to
    tx.running += (new is State.RUNNING) - (prev is State.RUNNING)
    tx.overlay[spider, job_no] = (int(new), stored)
    tx.writes.append((Q.move_job_late, params, position))


async def start_job(tx: Tx, request: StartRequest, actor: str) -> Later | None:
    """Late-locking only: the answer needs the position, known at commit."""
    moved = list(tx.overlay)
    row = await tx.one(Q.claim_job, {
        "project": tx.project, "botgroup": request.botgroup, "running": tx.running,
        "ex_s": [k[0] for k in moved], "ex_j": [k[1] for k in moved]})
    if row is None:
        return None
    sid, job_no, raw, pending_position, spider = int(row[0]), int(row[1]), row[2], row[3], row[4]
    change = changes.claimed(orjson.loads(raw), request.params, tx.take, tx.ts, actor)
    await _store(tx, sid, job_no, change, prev=State.PENDING)
    key = JobKey(tx.project, sid, job_no)
    offset = change.position
    assert offset is not None

    def answer(first: int) -> tuple[JobKey, dict[str, Any]]:
        entered = {State.PENDING: int(pending_position), State.RUNNING: first + offset}
        return key, jobs.full_meta(change.meta, tx.project, spider, State.RUNNING, entered)

    return Later(answer)


# -- one round trip ----------------------------------------------------------------------


@dataclass(slots=True)
class OneTrip:
    """An operation that is one statement (see `postgres.py`, one-trip batches): its SQL
    and parameters (the batch adds `project` and `floor`, the lowest position of now), and
    what makes its answer of the row it returns (None: no row)."""

    sql: str
    params: dict[str, Any]
    answer: Callable[[tuple[Any, ...] | None], Any]
    #: (spider, job) of the job it names, locked by the batch first (in key order)
    key: tuple[int, int] | None = None


class LocksNeeded(Exception):
    """A claim run alone found that its project has a capped botgroup: it claimed nothing
    and must run again in a transaction that locks the botgroups first."""


def _members(patch: dict[str, Any]) -> str:
    """A patch's stored form as the members of a JSON object (no braces; '' when empty),
    to append to the stored metadata text."""
    return changes.encode(jobs.stored_form(patch))[1:-1]


def _stored_tags(patch: dict[str, Any]) -> str | None:
    tags = jobs.tags_of(patch)
    return changes.encode(tags) if tags else None


@functools.cache
def _claim_one_sql() -> str:
    return Q.claim_one.replace("/* claim_job */", Q.claim_job).replace(
        "/* alone */", "AND NOT (SELECT locks_needed FROM capped)")


def claim_one(project: int, request: StartRequest, now_ms: int, actor: str) -> OneTrip:
    """startjob as one statement: the claim's patch does not depend on the job."""
    patch = changes.claim_patch(request.params, now_ms, actor)
    tags_changed = "tags" in request.params

    def answer(row: tuple[Any, ...] | None) -> tuple[JobKey, dict[str, Any]] | None:
        if row is None:
            return None
        sid, job_no, raw, pending, running, spider = row
        if sid is None:
            raise LocksNeeded
        entered = {State.PENDING: int(pending), State.RUNNING: int(running)}
        return (JobKey(project, int(sid), int(job_no)),
                jobs.full_meta(orjson.loads(raw), project, spider, State.RUNNING, entered))

    return OneTrip(_claim_one_sql(), {
        # no exclusions (NULL arrays: cheaper to send than empty ones)
        "botgroup": request.botgroup, "running": 0, "ex_s": None, "ex_j": None, "alone": False,
        "patch": _members(patch), "tags_changed": tags_changed,
        "tags": _stored_tags(patch) if tags_changed else None,
    }, answer)


def update_one(project: int, upd: JobUpdate, now_ms: int, actor: str) -> OneTrip:
    """An update of one job named by its key, to a state, as one statement (the patches for
    a move and for a stay are both sent; the statement applies the one that holds)."""
    key, target = upd.target, upd.state
    assert isinstance(key, JobKey) and target is not None
    tags_changed = "tags" in upd.fields
    moved = changes.update_patch(upd, target, now_ms, actor)

    def answer(row: tuple[Any, ...] | None) -> list[Updated]:
        if row is None:
            return []
        prev = State(row[0])
        # the rule (a refused move is a conflict): the statement wrote nothing then
        jobs.update_target(prev, target, f"line 1: job {key}")
        return [Updated(key, prev)]

    return OneTrip(Q.update_one, {
        "spider": key.spider, "job": key.job, "state": int(target),
        "sources": sum(1 << s for s in jobs.sources(target)),
        "moved": _members(moved), "same": _members(changes.update_patch(upd, None, 0, actor)),
        "tags_changed": tags_changed, "tags": _stored_tags(moved) if tags_changed else None,
    }, answer, key=(key.spider, key.job))


def cancel_one(key: JobKey, now_ms: int, actor: str) -> OneTrip:
    """The cancel of one job named by its key as one statement: `update_one` moving it to
    finished from pending only, with the cancel's patch. Its answer is None for a running
    job, which the statement left as it was: the request it records keeps the fields the
    job has (`jobs.cancel`), which a patch cannot say, so the caller cancels it as usual."""
    patch: dict[str, Any] = {}
    jobs.cancel(patch, State.PENDING, now_ms, actor)

    def answer(row: tuple[Any, ...] | None) -> Cancelled | None:
        if row is not None and row[0] == State.RUNNING:
            return None
        moved = row is not None and row[0] == State.PENDING
        return Cancelled(int(moved), int(moved))

    return OneTrip(Q.update_one, {
        "spider": key.spider, "job": key.job, "state": int(State.FINISHED),
        "sources": 1 << State.PENDING, "moved": _members(patch), "same": "",
        "tags_changed": False, "tags": None,
    }, answer, key=(key.spider, key.job))


async def _select_targets(
    tx: Tx, target: JobKey | SpiderKey
) -> list[tuple[Any, ...]]:
    if tx.late:
        assert isinstance(target, JobKey)
        return await tx.locked_job(target)
    if isinstance(target, JobKey):
        return await tx.all(Q.job_for_update, {
            "project": target.project, "spider": target.spider, "job": target.job})
    return await tx.all(Q.spider_jobs_for_update, {
        "project": target.project, "spider": target.spider})


async def update(tx: Tx, updates: Sequence[JobUpdate], actor: str) -> list[Updated]:
    done: list[Updated] = []
    for line, upd in enumerate(updates, 1):
        named = f"line {line}: job {upd.target}" if isinstance(upd.target, JobKey) else None
        for sid, job_no, state_no, raw in await _select_targets(tx, upd.target):
            prev = State(state_no)
            change = changes.updated(prev, upd, named, orjson.loads(raw), tx.take, tx.ts, actor)
            if change is not None:
                await _store(tx, int(sid), int(job_no), change, prev=prev)
                done.append(Updated(JobKey(tx.project, int(sid), int(job_no)), prev))
    return done


async def cancel(
    tx: Tx, keys: Sequence[JobKey] | None, limit: int | None, actor: str
) -> Cancelled:
    if keys is None:
        rows = await tx.all(Q.oldest_pending, {"project": tx.project, "limit": limit})
    else:
        rows = []
        for key in dict.fromkeys(keys):
            rows += await tx.all(Q.active_job, {
                "project": key.project, "spider": key.spider, "job": key.job})
    for sid, job_no, state_no, raw in rows:
        change = changes.cancelled(orjson.loads(raw), State(state_no), tx.take, tx.ts,
                                   tx.now_ms, actor)
        await _store(tx, int(sid), int(job_no), change)
    return Cancelled.of([row[2] for row in rows])


async def _load_meta(tx: Tx, key: JobKey) -> dict[str, Any] | None:
    row = await tx.one(Q.job_meta, {"project": key.project, "spider": key.spider,
                                    "job": key.job})
    return orjson.loads(row[0]) if row else None


async def set_job_meta(tx: Tx, key: JobKey, fields: dict[str, Any]) -> bool:
    meta = await _load_meta(tx, key)
    if meta is None:
        return False
    await _store(tx, key.spider, key.job, changes.fields_set(meta, fields))
    return True


async def delete_job_meta_field(tx: Tx, key: JobKey, name: str) -> bool:
    meta = await _load_meta(tx, key)
    if meta is None:
        return False
    change = changes.field_deleted(meta, name)
    if change is not None:
        await _store(tx, key.spider, key.job, change)
    return True


async def remove_job(tx: Tx, key: JobKey) -> bool:
    cursor = await tx.conn.execute(Q.remove_job, {
        "project": key.project, "spider": key.spider, "job": key.job})
    return cursor.rowcount > 0


async def update_settings(
    tx: Tx, fields: dict[str, Any], remove: Sequence[str]
) -> None:
    row = await tx.one(Q.settings, {"project": tx.project})
    assert row is not None
    stored, botgroups = changes.settings_merged(orjson.loads(row[0]), fields, remove)
    await tx.conn.execute(Q.save_settings, {"project": tx.project, "settings": stored})
    if botgroups is not None:
        await tx.conn.execute(Q.clear_project_botgroups, {"project": tx.project})
        if botgroups:
            await tx.conn.execute(Q.add_project_botgroups,
                                  {"project": tx.project, "botgroups": botgroups})


#: jobs read at a time by `backfill_counters`
_BACKFILL_BATCH = 1000


async def backfill_counters(conn: AsyncConnection[Any]) -> None:
    """Migration 0007: the counters column of the jobs stored before it, computed by the
    domain from their metadata as every write does (`changes.stored_counters`). Only the
    metadata naming `scrapystats` is parsed; the rest keeps NULL."""
    after = (0, 0, 0)
    while True:
        cursor = await conn.execute(Q.backfill_counters_read, {
            "project": after[0], "spider": after[1], "job": after[2],
            "limit": _BACKFILL_BATCH})
        rows = await cursor.fetchall()
        if not rows:
            return
        await conn.execute(Q.backfill_counters_write, {
            "projects": [r[0] for r in rows], "spiders": [r[1] for r in rows],
            "jobs": [r[2] for r in rows],
            "counters": [changes.stored_counters(orjson.loads(r[3])) for r in rows]})
        after = rows[-1][:3]
