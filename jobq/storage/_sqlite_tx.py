"""The write transactions of the SQLite backend.

Each function runs inside the group-commit writer's transaction (see `_sqlite_writer`),
which is the only writer of the database file, so reading a row and then writing it
needs no further locking. Positions are taken from `projects.last_position` while the
write lock is held, so positions grow in commit order.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson

from jobq.domain import changes, jobs
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import Cancelled, JobUpdate, NewJob, Pushed, StartRequest, Updated

_POSITION_COLUMN = {
    State.PENDING: "pending_position",
    State.RUNNING: "running_position",
    State.FINISHED: "finished_position",
    State.DELETED: "deleted_position",
}


class Positions:
    """Hands out the positions of one transaction and stores the last one at the end."""

    def __init__(self, conn: sqlite3.Connection, project: int, now_ms: int) -> None:
        self._conn = conn
        self._project = project
        self._now_ms = now_ms
        ensure_project(conn, project)
        row = conn.execute(
            "SELECT last_position FROM projects WHERE project_id = ?", (project,)
        ).fetchone()
        self.last: int = row[0]
        self._start = self.last

    def take(self) -> int:
        self.last = jobs.next_position(self.last, self._now_ms)
        return self.last

    def save(self) -> None:
        if self.last != self._start:
            self._conn.execute(
                "UPDATE projects SET last_position = ? WHERE project_id = ?",
                (self.last, self._project),
            )


def ensure_project(conn: sqlite3.Connection, project: int) -> None:
    conn.execute("INSERT OR IGNORE INTO projects (project_id) VALUES (?)", (project,))


def spider_id(conn: sqlite3.Connection, project: int, name: str, create: bool) -> int | None:
    row = conn.execute(
        "SELECT spider_id FROM spiders WHERE project_id = ? AND name = ?", (project, name)
    ).fetchone()
    if row is not None:
        return int(row[0])
    if not create:
        return None
    ensure_project(conn, project)
    (new_id,) = conn.execute(
        "UPDATE projects SET last_spider_id = last_spider_id + 1 WHERE project_id = ?"
        " RETURNING last_spider_id",
        (project,),
    ).fetchone()
    conn.execute(
        "INSERT INTO spiders (project_id, spider_id, name) VALUES (?, ?, ?)",
        (project, new_id, name),
    )
    return int(new_id)


def _active_with_unique(
    conn: sqlite3.Connection, project: int, uniques: Sequence[str]
) -> dict[str, JobKey]:
    found: dict[str, JobKey] = {}
    for start in range(0, len(uniques), 500):  # within SQLite's parameters per statement
        chunk = uniques[start:start + 500]
        found.update(
            (unique, JobKey(project, sid, no)) for unique, sid, no in conn.execute(
                "SELECT unique_key, spider_id, job_no FROM jobs WHERE project_id = ?"
                f" AND unique_key IN ({', '.join('?' * len(chunk))}) AND state IN (0, 1)",
                (project, *chunk),
            )
        )
    return found


#: most rows one INSERT writes (6,657 parameters: SQLite allows 32,766 since 3.32, and
#: fewer where its build says so, see `_insert_jobs`)
_MAX_ROWS = 512


@functools.cache
def _insert_sql(n: int) -> str:
    """An INSERT of `n` new rows. `?1` is the project in every row; each bare `?` takes
    the number after the highest so far, so the parameters are the project, then the rows'
    values in order."""
    row = f"(?1, {', '.join('?' * len(changes.NEW_ROW_COLUMNS))})"
    return (f"INSERT INTO jobs (project_id, {', '.join(changes.NEW_ROW_COLUMNS)})"
            f" VALUES {', '.join([row] * n)}")


def _insert_jobs(conn: sqlite3.Connection, project: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """A few multi-row INSERTs rather than an executemany: sqlite3 lets go of the GIL and
    takes it back around every statement it steps, so N single-row steps wait N times for
    a busy event loop, and bind and step each row from Python. Chunks of a power of two
    rows keep the statements few and cached (at most 10 distinct ones)."""
    most = (conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1) // len(
        changes.NEW_ROW_COLUMNS)
    most = min(_MAX_ROWS, 1 << most.bit_length() - 1)
    start = 0
    while start < len(rows):
        n = min(most, 1 << (len(rows) - start).bit_length() - 1)
        conn.execute(_insert_sql(n), [project, *chain.from_iterable(rows[start:start + n])])
        start += n


def push(
    conn: sqlite3.Connection, project: int, new_jobs: Sequence[NewJob], actor: str, now_ms: int,
    columns: Sequence[tuple[str | None, str, str | None]] | None = None,
) -> list[Pushed]:
    """`columns`: each line's `changes.new_columns`, when computed before."""
    spider_ids: dict[str, int] = {}
    for job in new_jobs:
        if job.spider not in spider_ids:
            spider_ids[job.spider] = spider_id(conn, project, job.spider, create=True) or 0
    uniques = list(dict.fromkeys(j.unique for j in new_jobs if j.unique is not None))
    plan = changes.plan_push(new_jobs, spider_ids, _active_with_unique(conn, project, uniques))
    last_no = {}
    for sid, n in plan.per_spider.items():
        (last_no[sid],) = conn.execute(
            "UPDATE spiders SET last_job_no = last_job_no + ?"
            " WHERE project_id = ? AND spider_id = ? RETURNING last_job_no",
            (n, project, sid),
        ).fetchone()
    positions = Positions(conn, project, now_ms)
    rows, answers = changes.new_rows(project, new_jobs, plan, spider_ids, last_no,
                                     positions.take, actor, columns)
    _insert_jobs(conn, project, rows)
    # inserts bypass the count triggers: one upsert per (spider, state) instead of per job
    counts = Counter((row[0], row[2]) for row in rows)
    conn.executemany(
        "INSERT INTO state_counts (project_id, spider_id, state, n) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (project_id, spider_id, state) DO UPDATE SET n = n + excluded.n",
        [(project, sid, state, n) for (sid, state), n in counts.items()],
    )
    positions.save()
    return answers


@dataclass(frozen=True, slots=True)
class PushOp:
    """A push, as the group-commit writer takes it: concurrent pushes to one project by one
    actor merge into one `push` call (one insert, one position and count update). Made
    by `prepare` on the caller's thread, which encodes each line's metadata there: the
    writer, which every write waits for, only numbers and inserts them."""

    project: int
    new_jobs: Sequence[NewJob]
    actor: str
    now_ms: int
    columns: Sequence[tuple[str | None, str, str | None]]

    @classmethod
    def prepare(cls, project: int, new_jobs: Sequence[NewJob], actor: str,
                now_ms: int) -> PushOp:
        return cls(project, new_jobs, actor, now_ms,
                   [changes.new_columns(job, actor) for job in new_jobs])

    @property
    def merge_key(self) -> tuple[str, int, str]:
        return ("push", self.project, self.actor)

    def __call__(self, conn: sqlite3.Connection) -> list[Pushed]:
        return push(conn, self.project, self.new_jobs, self.actor, self.now_ms, self.columns)

    @staticmethod
    def run_many(conn: sqlite3.Connection, ops: Sequence[PushOp]) -> list[list[Pushed]]:
        first = ops[0]
        merged = push(conn, first.project, [j for op in ops for j in op.new_jobs], first.actor,
                      max(op.now_ms for op in ops), [c for op in ops for c in op.columns])
        results, start = [], 0
        for op in ops:
            results.append(merged[start:start + len(op.new_jobs)])
            start += len(op.new_jobs)
        return results


def _store(conn: sqlite3.Connection, row_id: int, change: changes.Change) -> None:
    """Write a job's change: its metadata (and the counters kept with it), and its state
    and tags when they change."""
    assignments = ["meta = ?", "counters = ?"]
    values: list[Any] = [change.stored_meta, change.stored_counters]
    if (state := change.moved_to) is not None:
        assignments += ["state = ?", "position = ?", f"{_POSITION_COLUMN[state]} = ?"]
        values += [int(state), change.position, change.position]
    if change.tags_changed:
        assignments.append("tags = ?")
        values.append(change.stored_tags)
    values.append(row_id)
    conn.execute(f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ?", values)


def _botgroup_allows(conn: sqlite3.Connection, project: int, botgroup: str | None) -> bool:
    if botgroup is not None and not conn.execute(
        "SELECT 1 FROM project_botgroups WHERE project_id = ? AND botgroup = ?",
        (project, botgroup),
    ).fetchone():
        return False
    return has_capacity(conn, project)


def has_capacity(conn: sqlite3.Connection, project: int) -> bool:
    full = conn.execute(
        "SELECT 1 FROM project_botgroups pb JOIN botgroups b ON b.botgroup = pb.botgroup"
        " WHERE pb.project_id = ? AND b.max_running IS NOT NULL AND b.max_running <= ("
        "   SELECT COALESCE(SUM(sc.n), 0) FROM project_botgroups member"
        "   JOIN state_counts sc ON sc.project_id = member.project_id AND sc.state = 1"
        "   WHERE member.botgroup = pb.botgroup)"
        " LIMIT 1",
        (project,),
    ).fetchone()
    return full is None


def start_job(
    conn: sqlite3.Connection, project: int, request: StartRequest, actor: str, now_ms: int
) -> tuple[JobKey, dict[str, Any]] | None:
    if not _botgroup_allows(conn, project, request.botgroup):
        return None
    row = conn.execute(
        "SELECT id, spider_id, job_no, meta, pending_position FROM jobs"
        " WHERE project_id = ? AND state = 0 ORDER BY priority DESC, position LIMIT 1",
        (project,),
    ).fetchone()
    if row is None:
        return None
    row_id, sid, job_no, raw, pending_position = row
    positions = Positions(conn, project, now_ms)
    change = changes.claimed(orjson.loads(raw), request.params, positions.take, jobs.ts_of,
                             actor)
    _store(conn, row_id, change)
    positions.save()
    (spider,) = conn.execute(
        "SELECT name FROM spiders WHERE project_id = ? AND spider_id = ?", (project, sid)
    ).fetchone()
    entered = {State.PENDING: pending_position, State.RUNNING: change.position}
    return JobKey(project, sid, job_no), jobs.full_meta(change.meta, project, spider,
                                                        State.RUNNING, entered)


def _select_targets(
    conn: sqlite3.Connection, target: JobKey | SpiderKey
) -> list[tuple[int, int, int, int, str]]:
    if isinstance(target, JobKey):
        return conn.execute(
            "SELECT id, spider_id, job_no, state, meta FROM jobs"
            " WHERE project_id = ? AND spider_id = ? AND job_no = ? AND state <> 4",
            (target.project, target.spider, target.job),
        ).fetchall()
    return conn.execute(
        "SELECT id, spider_id, job_no, state, meta FROM jobs"
        " WHERE project_id = ? AND spider_id = ? AND state IN (0, 1, 2)"
        " ORDER BY state, position",
        (target.project, target.spider),
    ).fetchall()


def update(
    conn: sqlite3.Connection,
    project: int,
    updates: Sequence[JobUpdate],
    actor: str,
    now_ms: int,
) -> list[Updated]:
    positions = Positions(conn, project, now_ms)
    done: list[Updated] = []
    for line, upd in enumerate(updates, 1):
        named = f"line {line}: job {upd.target}" if isinstance(upd.target, JobKey) else None
        for row_id, sid, job_no, state_no, raw in _select_targets(conn, upd.target):
            prev = State(state_no)
            change = changes.updated(prev, upd, named, orjson.loads(raw), positions.take,
                                     jobs.ts_of, actor)
            if change is not None:
                _store(conn, row_id, change)
                done.append(Updated(JobKey(project, sid, job_no), prev))
    positions.save()
    return done


def cancel(
    conn: sqlite3.Connection,
    project: int,
    keys: Sequence[JobKey] | None,
    limit: int | None,
    actor: str,
    now_ms: int,
) -> Cancelled:
    if keys is None:
        rows = conn.execute(
            "SELECT id, state, meta FROM jobs WHERE project_id = ? AND state = 0"
            " ORDER BY position LIMIT ?",
            (project, limit if limit is not None else -1),
        ).fetchall()
    else:
        rows = []
        for key in dict.fromkeys(keys):
            rows += conn.execute(
                "SELECT id, state, meta FROM jobs WHERE project_id = ? AND spider_id = ?"
                " AND job_no = ? AND state IN (0, 1)",
                (key.project, key.spider, key.job),
            ).fetchall()
    positions = Positions(conn, project, now_ms)
    for row_id, state_no, raw in rows:
        _store(conn, row_id, changes.cancelled(orjson.loads(raw), State(state_no),
                                               positions.take, jobs.ts_of, now_ms, actor))
    positions.save()
    return Cancelled.of([state for _, state, _ in rows])


def _load_meta(conn: sqlite3.Connection, key: JobKey) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute(
        "SELECT id, meta FROM jobs WHERE project_id = ? AND spider_id = ? AND job_no = ?"
        " AND state <> 4",
        (key.project, key.spider, key.job),
    ).fetchone()
    return (row[0], orjson.loads(row[1])) if row else None


def set_job_meta(conn: sqlite3.Connection, key: JobKey, fields: dict[str, Any]) -> bool:
    found = _load_meta(conn, key)
    if found is None:
        return False
    row_id, meta = found
    _store(conn, row_id, changes.fields_set(meta, fields))
    return True


def delete_job_meta_field(conn: sqlite3.Connection, key: JobKey, name: str) -> bool:
    found = _load_meta(conn, key)
    if found is None:
        return False
    row_id, meta = found
    change = changes.field_deleted(meta, name)
    if change is not None:
        _store(conn, row_id, change)
    return True


def remove_job(conn: sqlite3.Connection, key: JobKey) -> bool:
    cursor = conn.execute(
        "UPDATE jobs SET state = 4, meta = '{}', counters = NULL, tags = NULL, unique_key = NULL"
        " WHERE project_id = ? AND spider_id = ? AND job_no = ? AND state <> 4",
        (key.project, key.spider, key.job),
    )
    return cursor.rowcount > 0


def update_settings(
    conn: sqlite3.Connection, project: int, fields: dict[str, Any], remove: Sequence[str]
) -> None:
    ensure_project(conn, project)
    (raw,) = conn.execute(
        "SELECT settings FROM projects WHERE project_id = ?", (project,)
    ).fetchone()
    stored, botgroups = changes.settings_merged(orjson.loads(raw), fields, remove)
    conn.execute("UPDATE projects SET settings = ? WHERE project_id = ?", (stored, project))
    if botgroups is not None:
        conn.execute("DELETE FROM project_botgroups WHERE project_id = ?", (project,))
        conn.executemany(
            "INSERT INTO project_botgroups (project_id, botgroup) VALUES (?, ?)",
            [(project, name) for name in botgroups],
        )


#: jobs read at a time by `backfill_counters`
_BACKFILL_BATCH = 1000


def backfill_counters(conn: sqlite3.Connection) -> None:
    """Migration 0007: the counters column of the jobs stored before it, computed by the
    domain from their metadata as every write does (`changes.stored_counters`). Only the
    metadata naming `scrapystats` is parsed; the rest keeps NULL."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, meta FROM jobs WHERE id > ? AND state <> 4"
            " AND instr(meta, '\"scrapystats\"') > 0 ORDER BY id LIMIT ?",
            (last, _BACKFILL_BATCH),
        ).fetchall()
        if not rows:
            return
        conn.executemany("UPDATE jobs SET counters = ? WHERE id = ?",
                         [(changes.stored_counters(orjson.loads(raw)), row_id)
                          for row_id, raw in rows])
        last = rows[-1][0]
