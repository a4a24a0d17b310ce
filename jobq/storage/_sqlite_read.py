"""The read queries of the SQLite backend.

What a list or count reads is decided in `jobq.domain.filters`; `SqliteDialect` renders
it (see `_sql_filters`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

from jobq.domain import filters, jobs, records, rows
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobRecord, ListQuery
from jobq.storage._sql_filters import Dialect, RowText, TextValue

#: the jobs with their spider's name
_WITH_SPIDER = ("FROM jobs j JOIN spiders s"
                " ON s.project_id = j.project_id AND s.spider_id = j.spider_id")
_COLUMNS = (
    "j.spider_id, j.job_no, j.state, j.position, j.pending_position, j.running_position,"
    " j.finished_position, j.deleted_position, j.tags, j.counters"
)


class SqliteDialect(Dialect):
    false = "0"

    def param(self, value: Any, column: str = "") -> str:
        self.values.append(value)
        return "?"

    def one_of(self, values: Sequence[Any], kind: str) -> str:
        self.values.extend(values)
        return f"IN ({', '.join('?' * len(values))})"

    def key_in(self, pairs: Sequence[tuple[int, int]]) -> str:
        self.values.extend(v for pair in pairs for v in pair)
        if len(pairs) == 1:
            # SQLite plans `IN (VALUES (?, ?))` of one pair as a scan of the spider's queue
            # in that state (3.8 ms at 10,000 pending; a cancel's count pays it): the
            # equalities find the job by its key (0.01 ms)
            return "(j.spider_id = ? AND j.job_no = ?)"
        return "(j.spider_id, j.job_no) IN (VALUES " + ", ".join(["(?, ?)"] * len(pairs)) + ")"

    def meta_in(self, field: str, values: Sequence[str]) -> str:
        # only a string matches: json_extract would give an array or object as its text
        # (placeholders are numbered in the order they are rendered)
        where = f"json_type(j.meta, {self.param(f'$.{field}')}) = 'text'"
        return where + f" AND json_extract(j.meta, {self.param(f'$.{field}')}) " + self.one_of(
            values, "text")

    def limit(self, n: int | None) -> str:
        return self.param(-1 if n is None else n)

    def branch(self, select: str) -> str:
        return f"SELECT * FROM ({select})"

    def json_string(self, expression: str) -> str:
        return f"json_quote({expression})"

    def text(self, pieces: Sequence[str | TextValue]) -> str:
        # one format() call per row costs SQLite a third less than `||` (each copies the
        # text so far; 10,000 rows: 13.8 ms against 20.0); a NULL `%s` is written as nothing
        template = "".join(p.replace("%", "%%") if isinstance(p, str)
                           else "%d" if p.integer else "%s" for p in pieces)
        values = ", ".join(p.sql for p in pieces if not isinstance(p, str))
        return f"format('{template.replace(chr(39), chr(39) * 2)}', {values})"


def list_jobs(conn: sqlite3.Connection, project: int, query: ListQuery) -> list[JobRecord]:
    scan = filters.scan(project, query)
    if scan is None:
        return []
    dialect = SqliteDialect()
    sql = dialect.list_sql(scan, _COLUMNS + (", j.meta" if query.with_meta else ""), "FROM jobs j")
    return _records(conn, project, conn.execute(sql, dialect.values).fetchall(), query.with_meta)


def list_text(conn: sqlite3.Connection, project: int, query: ListQuery, now: int) -> str:
    """The rows of `query` as JSON text (`rows.LIST_ROW`), one a line."""
    scan = filters.scan(project, query)
    if scan is None:
        return ""
    dialect = SqliteDialect()
    line = RowText(dialect, project, now, jobs.POSITION_SHIFT).sql(rows.LIST_ROW)
    listed = dialect.list_sql(scan, f"j.position, {line} AS line", _WITH_SPIDER, order=1)
    # one text from SQLite rather than a Python string per row (10,000 rows: 2.3 ms less).
    # The aggregate takes the rows in the order of the ordered, limited subquery, which
    # SQLite cannot flatten into it (`group_concat(... ORDER BY)` needs SQLite 3.44)
    row = conn.execute(f"SELECT group_concat(r.line, char(10)) FROM ({listed}) r",
                       dialect.values).fetchone()
    return row[0] or ""


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
    return [records.job_record(project, row, names[row[0]], row[10] if with_meta else None)
            for row in rows]


def count_jobs(conn: sqlite3.Connection, project: int, query: ListQuery) -> int:
    by_tag = filters.tag_count(project, query)
    if by_tag is not None:
        d = SqliteDialect()
        return int(conn.execute(d.tag_count_sql(by_tag), d.values).fetchone()[0])
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
    if not driving and not filters.row_terms(project, query):
        counts = state_counts_for(conn, project, query.spiders)
        return sum(counts.get(s, 0) for s in query.states)
    scan = filters.scan(project, dataclasses.replace(query, has_tags=(), count=None)
                        if driving else query)
    if scan is None:
        return 0
    d = SqliteDialect()
    if not driving:
        return int(conn.execute(d.count_sql(scan), d.values).fetchone()[0])
    # with tags, start from the tag index (CROSS JOIN keeps that order): the cost is the
    # jobs having the tag, not the jobs in the queue
    parts = []
    for branch in scan.branches:
        tagged = (f"SELECT DISTINCT spider_id, job_no FROM job_tags"
                  f" WHERE project_id = {d.param(project)} AND tag {d.one_of(driving, 'text')}")
        join = (f"j.project_id = {d.param(project)} AND j.spider_id = t.spider_id"
                " AND j.job_no = t.job_no")
        where = d.where(scan.where(branch))
        if also:
            where += (" AND (j.spider_id, j.job_no) IN (SELECT spider_id, job_no FROM job_tags"
                      f" WHERE project_id = {d.param(project)} AND tag {d.one_of(also, 'text')})")
        parts.append(f"(SELECT COUNT(*) FROM ({tagged}) t CROSS JOIN jobs j ON {join}"
                     f" WHERE {where})")
    return int(conn.execute("SELECT " + " + ".join(parts), d.values).fetchone()[0])


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
    return None if row is None else records.last_entered(row, states)


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
