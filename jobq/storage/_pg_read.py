"""The read queries of the PostgreSQL backend.

Every read is one statement (one snapshot, one round trip) on an autocommit connection.
A queue is read through the index (project_id, state, position) or, for one spider,
(project_id, spider_id, state, position); a list over several queues (or spiders) is one
`UNION ALL` of per-index scans, each already in position order and limited, as in the
SQLite backend (`_sqlite_read`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from jobq.domain import jobs
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobRecord, ListQuery
from jobq.storage._pg_sql import Q


class Params:
    """Positional parameters collected while building a statement."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"%s{cast}"


def _filters(project: int, query: ListQuery, p: Params) -> list[str]:
    """WHERE terms shared by every branch (all but state and spider)."""
    terms: list[str] = []
    if query.after_position is not None:
        terms.append(f"j.position > {p(query.after_position, '::bigint')}")
    if query.startts is not None:
        terms.append(f"j.position >= {p(jobs.position_floor(query.startts), '::bigint')}")
    if query.endts is not None:
        terms.append(f"j.position < {p(jobs.position_floor(query.endts), '::bigint')}")
    if query.keys is not None:
        pairs = [(k.spider, k.job) for k in query.keys if k.project == project]
        if not pairs:
            terms.append("false")
        else:
            spiders = p([s for s, _ in pairs], "::bigint[]")
            numbers = p([n for _, n in pairs], "::bigint[]")
            terms.append(f"(j.spider_id, j.job_no) IN (SELECT * FROM unnest({spiders}, {numbers}))")
    for tags, negate in ((query.has_tags, ""), (query.lacks_tags, "NOT ")):
        if tags:
            terms.append(
                f"{negate}EXISTS (SELECT 1 FROM job_tags t WHERE t.project_id = j.project_id"
                f" AND t.tag = ANY({p(list(tags), '::text[]')})"
                " AND t.spider_id = j.spider_id AND t.job_no = j.job_no)"
            )
    if query.close_reasons:
        # as SQLite's json_extract(...) IN (...): only a string value can match a string
        reasons = p(list(query.close_reasons), "::text[]")
        terms.append(
            "json_typeof(j.meta::json -> 'close_reason') = 'string'"
            f" AND (j.meta::json ->> 'close_reason') = ANY({reasons})"
        )
    return terms


def _branches(project: int, query: ListQuery) -> list[tuple[str, list[Any]]]:
    """One (WHERE, parameters) per queue scanned: each state, times each spider if
    filtered."""
    spiders: Sequence[int | None] = query.spiders if query.spiders is not None else (None,)
    branches = []
    for state in query.states:
        for spider in spiders:
            p = Params()
            terms = [f"j.project_id = {p(project, '::bigint')}",
                     f"j.state = {p(int(state), '::smallint')}"]
            if spider is not None:
                terms.append(f"j.spider_id = {p(spider, '::bigint')}")
            terms += _filters(project, query, p)
            branches.append((" AND ".join(terms), p.values))
    return branches


def list_sql(project: int, query: ListQuery) -> tuple[str, list[Any]] | None:
    columns = Q.list_columns + (", j.meta" if query.with_meta else "")
    source = Q.list_source
    branches = _branches(project, query)
    if not branches or query.count == 0:
        return None
    if len(branches) == 1:
        where, args = branches[0]
        sql = (f"SELECT {columns} {source} WHERE {where}"
               " ORDER BY j.position DESC LIMIT %s::bigint OFFSET %s::bigint")
        return sql, [*args, query.count, query.start]
    inner_limit = None if query.count is None else query.count + query.start
    parts, args = [], []
    for where, branch_args in branches:
        parts.append(f"(SELECT {columns} {source} WHERE {where}"
                     " ORDER BY j.position DESC LIMIT %s::bigint)")
        args += [*branch_args, inner_limit]
    sql = " UNION ALL ".join(parts) + " ORDER BY 4 DESC LIMIT %s::bigint OFFSET %s::bigint"
    return sql, [*args, query.count, query.start]


def record(project: int, row: Sequence[Any], with_meta: bool) -> JobRecord:
    sid, job_no, state, position, p0, p1, p2, p3, tags, name = row[:10]
    positions = {
        s: int(pos)
        for s, pos in zip((*jobs.LISTABLE, State.DELETED), (p0, p1, p2, p3), strict=True)
        if pos is not None
    }
    return JobRecord(
        key=JobKey(project, int(sid), int(job_no)),
        spider=name,
        state=State(state),
        position=int(position),
        positions=positions,
        tags=orjson.loads(tags) if tags else None,
        meta=(jobs.full_meta(orjson.loads(row[10]), project, name, State(state), positions)
              if with_meta else None),
    )


def count_sql(project: int, query: ListQuery) -> tuple[str, list[Any]] | None:
    """None when the count comes from `state_counts` (no filter but state and spider)."""
    if not _filters(project, query, Params()):
        return None
    branches = _branches(project, query)
    if not branches:
        return "SELECT 0", []
    parts = [f"(SELECT count(*) FROM jobs j WHERE {where})" for where, _ in branches]
    return "SELECT " + " + ".join(parts), [v for _, args in branches for v in args]


def state_counts_sql(project: int, spiders: Sequence[int] | None) -> tuple[str, dict[str, Any]]:
    if spiders is None:
        return Q.state_counts, {"project": project}
    return Q.state_counts_of_spiders, {"project": project, "spiders": list(spiders)}


def stop_position(row: Sequence[Any] | None, states: Sequence[State]) -> int | None:
    if row is None:
        return None
    entered = [int(row[int(s)]) for s in states if row[int(s)] is not None]
    return max(entered) if entered else None
