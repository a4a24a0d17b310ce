"""The read queries of the PostgreSQL backend.

Every read is one statement (one snapshot, one round trip) on an autocommit connection.
What a list or count reads is decided in `jobq.domain.filters`; `PgDialect` renders it
(see `_sql_filters`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jobq.domain import filters, jobs, records, rows
from jobq.domain.jobs import State
from jobq.domain.records import JobRecord, ListQuery
from jobq.storage._pg_sql import Q
from jobq.storage._sql_filters import Dialect, RowText

_CASTS = {"project_id": "::bigint", "spider_id": "::bigint", "position": "::bigint",
          "state": "::smallint", "": ""}


class PgDialect(Dialect):
    percent = "%%"

    def param(self, value: Any, column: str = "") -> str:
        self.values.append(value)
        return "%s" + _CASTS[column]

    def one_of(self, values: Sequence[Any], kind: str) -> str:
        self.values.append(list(values))
        return f"= ANY(%s::{'bigint' if kind == 'int' else 'text'}[])"

    def key_in(self, pairs: Sequence[tuple[int, int]]) -> str:
        self.values += [[s for s, _ in pairs], [n for _, n in pairs]]
        return "(j.spider_id, j.job_no) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))"

    def meta_in(self, field: str, values: Sequence[str]) -> str:
        # as SQLite's json_type(...) = 'text': only a string value can match a string
        self.values += [field, field]
        return ("json_typeof(j.meta::json -> %s::text) = 'string'"
                f" AND (j.meta::json ->> %s::text) {self.one_of(values, 'text')}")

    def limit(self, n: int | None) -> str:
        return self.param(n, "position")

    def branch(self, select: str) -> str:
        return f"({select})"

    def json_string(self, expression: str) -> str:
        return f"to_json({expression}::text)::text"


def list_sql(project: int, query: ListQuery) -> tuple[str, list[Any]] | None:
    scan = filters.scan(project, query)
    if scan is None:
        return None
    dialect = PgDialect()
    columns = Q.list_columns + (", j.meta" if query.with_meta else "")
    return dialect.list_sql(scan, columns, Q.list_source), dialect.values


def list_text_sql(project: int, query: ListQuery, now: int) -> tuple[str, list[Any]] | None:
    """The rows of `query` as one JSON text (`rows.LIST_ROW`), one row a line."""
    scan = filters.scan(project, query)
    if scan is None:
        return None
    dialect = PgDialect()
    line = RowText(dialect, project, now, jobs.POSITION_SHIFT).sql(rows.LIST_ROW)
    listed = dialect.list_sql(scan, f"j.position, {line} AS line", Q.list_source, order=1)
    return (f"SELECT string_agg(r.line, chr(10) ORDER BY r.position DESC) FROM ({listed}) r",
            dialect.values)


def record(project: int, row: Sequence[Any], with_meta: bool) -> JobRecord:
    """A row of `list_columns` (+ meta)."""
    return records.job_record(project, row, row[10], row[11] if with_meta else None)


def count_sql(project: int, query: ListQuery) -> tuple[str, list[Any]] | None:
    """None when the count comes from `state_counts` (no filter but state and spider)."""
    if not filters.row_terms(project, query):
        return None
    by_tag = filters.tag_count(project, query)
    if by_tag is not None:
        dialect = PgDialect()
        return dialect.tag_count_sql(by_tag), dialect.values
    scan = filters.scan(project, dataclasses.replace(query, count=None))
    if scan is None:
        return "SELECT 0", []
    dialect = PgDialect()
    return dialect.count_sql(scan), dialect.values


def state_counts_sql(project: int, spiders: Sequence[int] | None) -> tuple[str, dict[str, Any]]:
    if spiders is None:
        return Q.state_counts, {"project": project}
    return Q.state_counts_of_spiders, {"project": project, "spiders": list(spiders)}


def stop_position(row: Sequence[Any] | None, states: Sequence[State]) -> int | None:
    return None if row is None else records.last_entered(row[:4], states)
