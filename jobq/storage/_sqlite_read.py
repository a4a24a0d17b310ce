"""The read queries of the SQLite backend.

A queue is read through the index (project_id, state, position) or, for one spider,
(project_id, spider_id, state, position). A list over several queues (or spiders) is
one `UNION ALL` of per-index scans, each already in position order and limited, so it
costs the rows it returns rather than the jobs stored.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from jobq.domain import jobs
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobRecord, ListQuery

_COLUMNS = (
    "j.spider_id, j.job_no, j.state, j.position, j.pending_position, j.running_position,"
    " j.finished_position, j.deleted_position, j.tags"
)


def _filters(project: int, query: ListQuery) -> tuple[list[str], list[Any]]:
    """WHERE terms shared by every branch (all but state and spider)."""
    terms: list[str] = []
    args: list[Any] = []
    if query.after_position is not None:
        terms.append("j.position > ?")
        args.append(query.after_position)
    if query.startts is not None:
        terms.append("j.position >= ?")
        args.append(jobs.position_floor(query.startts))
    if query.endts is not None:
        terms.append("j.position < ?")
        args.append(jobs.position_floor(query.endts))
    if query.keys is not None:
        pairs = [(k.spider, k.job) for k in query.keys if k.project == project]
        if not pairs:
            terms.append("0")
        else:
            terms.append(
                "(j.spider_id, j.job_no) IN (VALUES " + ", ".join(["(?, ?)"] * len(pairs)) + ")"
            )
            args.extend(v for pair in pairs for v in pair)
    for tags, negate in ((query.has_tags, ""), (query.lacks_tags, "NOT ")):
        if tags:
            terms.append(
                f"{negate}EXISTS (SELECT 1 FROM job_tags t WHERE t.project_id = j.project_id"
                f" AND t.tag IN ({', '.join('?' * len(tags))})"
                " AND t.spider_id = j.spider_id AND t.job_no = j.job_no)"
            )
            args.extend(tags)
    if query.close_reasons:
        marks = ", ".join("?" * len(query.close_reasons))
        terms.append(f"json_extract(j.meta, '$.close_reason') IN ({marks})")
        args.extend(query.close_reasons)
    return terms, args


def _branches(project: int, query: ListQuery) -> list[tuple[str, list[Any]]]:
    """One (WHERE, args) per queue scanned: each state, times each spider if filtered."""
    spiders: Sequence[int | None] = query.spiders if query.spiders is not None else (None,)
    branches = []
    for state in query.states:
        for spider in spiders:
            terms = ["j.project_id = ?", "j.state = ?"]
            args: list[Any] = [project, int(state)]
            if spider is not None:
                terms.append("j.spider_id = ?")
                args.append(spider)
            branches.append((terms, args))
    shared_terms, shared_args = _filters(project, query)
    return [(" AND ".join(t + shared_terms), a + shared_args) for t, a in branches]


def list_jobs(conn: sqlite3.Connection, project: int, query: ListQuery) -> list[JobRecord]:
    branches = _branches(project, query)
    if not branches or query.count == 0:
        return []
    columns = _COLUMNS + (", j.meta" if query.with_meta else "")
    source = "FROM jobs j"
    limit = -1 if query.count is None else query.count
    if len(branches) == 1:
        where, args = branches[0]
        sql = f"SELECT {columns} {source} WHERE {where} ORDER BY j.position DESC LIMIT ? OFFSET ?"
        args = [*args, limit, query.start]
    else:
        inner_limit = -1 if query.count is None else query.count + query.start
        parts, args = [], []
        for where, branch_args in branches:
            parts.append(
                f"SELECT * FROM (SELECT {columns} {source} WHERE {where}"
                " ORDER BY j.position DESC LIMIT ?)"
            )
            args += [*branch_args, inner_limit]
        sql = " UNION ALL ".join(parts) + " ORDER BY 4 DESC LIMIT ? OFFSET ?"
        args += [limit, query.start]
    return _records(conn, project, conn.execute(sql, args).fetchall(), query.with_meta)


def _records(
    conn: sqlite3.Connection, project: int, rows: list[Any], with_meta: bool
) -> list[JobRecord]:
    """Rows of `_COLUMNS` (+ meta) as records; spider names are read once per spider
    rather than joined to every row."""
    sids = {row[0] for row in rows}
    names: dict[int, str] = {}
    if sids:
        marks = ", ".join("?" * len(sids))
        names = dict(conn.execute(
            f"SELECT spider_id, name FROM spiders WHERE project_id = ? AND spider_id IN ({marks})",
            (project, *sids),
        ).fetchall())
    return [_record(project, row, names[row[0]], with_meta) for row in rows]


def _record(project: int, row: Any, name: str, with_meta: bool) -> JobRecord:
    sid, job_no, number, position, p0, p1, p2, p3, tags = row[:9]
    positions = {}
    if p0 is not None:
        positions[State.PENDING] = p0
    if p1 is not None:
        positions[State.RUNNING] = p1
    if p2 is not None:
        positions[State.FINISHED] = p2
    if p3 is not None:
        positions[State.DELETED] = p3
    state = jobs.BY_NUMBER[number]
    return JobRecord(
        JobKey(project, sid, job_no), name, state, position, positions,
        orjson.loads(tags) if tags else None,
        jobs.full_meta(orjson.loads(row[9]), project, name, state, positions)
        if with_meta else None,
    )


def count_jobs(conn: sqlite3.Connection, project: int, query: ListQuery) -> int:
    if query.lacks_tags:
        # none of L = all that match the rest, less those of them with one of L: both
        # counts start from indexes, where checking every job for L would scan the queue
        rest = dataclasses.replace(query, lacks_tags=())
        return count_jobs(conn, project, rest) - _count(conn, project, rest, query.lacks_tags)
    return _count(conn, project, query, ())


def _count(
    conn: sqlite3.Connection, project: int, query: ListQuery, any_of: tuple[str, ...]
) -> int:
    """Jobs matching `query` that also have one of `any_of` (when given)."""
    driving, also = (query.has_tags, any_of) if query.has_tags else (any_of, ())
    if not driving:
        if not _filters(project, query)[0]:
            counts = state_counts_for(conn, project, query.spiders)
            return sum(counts.get(s, 0) for s in query.states)
        return sum(
            conn.execute(f"SELECT COUNT(*) FROM jobs j WHERE {where}", args).fetchone()[0]
            for where, args in _branches(project, query)
        )
    # with tags, start from the tag index (CROSS JOIN keeps that order): the cost is the
    # jobs having the tag, not the jobs in the queue
    tagged = (f"SELECT DISTINCT spider_id, job_no FROM job_tags WHERE project_id = ?"
              f" AND tag IN ({', '.join('?' * len(driving))})")
    extra, extra_args = "", []
    if also:
        extra = (" AND (j.spider_id, j.job_no) IN (SELECT spider_id, job_no FROM job_tags"
                 f" WHERE project_id = ? AND tag IN ({', '.join('?' * len(also))}))")
        extra_args = [project, *also]
    rest = dataclasses.replace(query, has_tags=())
    total = 0
    for where, args in _branches(project, rest):
        sql = (f"SELECT COUNT(*) FROM ({tagged}) t CROSS JOIN jobs j"
               " ON j.project_id = ? AND j.spider_id = t.spider_id AND j.job_no = t.job_no"
               f" WHERE {where}{extra}")
        total += conn.execute(sql, [project, *driving, project, *args, *extra_args]).fetchone()[0]
    return int(total)


def state_counts_for(
    conn: sqlite3.Connection, project: int, spiders: Sequence[int] | None
) -> dict[State, int]:
    sql = "SELECT state, SUM(n) FROM state_counts WHERE project_id = ? AND state < 4"
    args: list[Any] = [project]
    if spiders is not None:
        if not spiders:
            return {}
        sql += f" AND spider_id IN ({', '.join('?' * len(spiders))})"
        args.extend(spiders)
    return {State(s): int(n) for s, n in conn.execute(sql + " GROUP BY state", args)}


def stop_position(conn: sqlite3.Connection, key: JobKey, states: Sequence[State]) -> int | None:
    row = conn.execute(
        "SELECT pending_position, running_position, finished_position, deleted_position"
        " FROM jobs WHERE project_id = ? AND spider_id = ? AND job_no = ?",
        (key.project, key.spider, key.job),
    ).fetchone()
    if row is None:
        return None
    entered = [row[int(s)] for s in states if row[int(s)] is not None]
    return max(entered) if entered else None


def last_jobs(conn: sqlite3.Connection, project: int, spider: int | None) -> list[JobRecord]:
    spider_ids = (
        [spider]
        if spider is not None
        else [r[0] for r in conn.execute(
            "SELECT spider_id FROM spiders WHERE project_id = ? ORDER BY spider_id", (project,)
        )]
    )
    rows = []
    for sid in spider_ids:
        row = conn.execute(
            f"SELECT {_COLUMNS}, j.meta FROM jobs j"
            " WHERE j.project_id = ? AND j.spider_id = ? AND j.state IN (0, 1, 2)"
            " ORDER BY j.job_no DESC LIMIT 1",
            (project, sid),
        ).fetchone()
        if row is not None:
            rows.append(row)
    return _records(conn, project, rows, with_meta=True)


def get_job_meta(conn: sqlite3.Connection, key: JobKey) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {_COLUMNS}, j.meta FROM jobs j"
        " WHERE j.project_id = ? AND j.spider_id = ? AND j.job_no = ? AND j.state <> 4",
        (key.project, key.spider, key.job),
    ).fetchone()
    return _records(conn, key.project, [row], with_meta=True)[0].meta if row else None
