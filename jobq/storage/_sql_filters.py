"""SQL of a `jobq.domain.filters.Scan`: the statement shapes shared by both backends, with
a `Dialect` for what SQLite and PostgreSQL spell differently (placeholders, lists of
values, JSON). The filters themselves are decided in `jobq.domain.filters`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from jobq.domain.filters import (
    Compare,
    KeyIn,
    MetaIn,
    Never,
    OneOf,
    Scan,
    TagCount,
    Tagged,
    Term,
)


class Dialect(abc.ABC):
    """Renders one statement, collecting its parameters in order (`values`)."""

    #: a condition that matches nothing
    false = "false"

    def __init__(self) -> None:
        self.values: list[Any] = []

    @abc.abstractmethod
    def param(self, value: Any, column: str = "") -> str:
        """The placeholder of one parameter (`column` names its type where needed)."""

    @abc.abstractmethod
    def one_of(self, values: Sequence[Any], kind: str) -> str:
        """`IN` a list of values (`kind`: "int" or "text")."""

    @abc.abstractmethod
    def key_in(self, pairs: Sequence[tuple[int, int]]) -> str:
        """(spider, job) is one of `pairs`."""

    @abc.abstractmethod
    def meta_in(self, field: str, values: Sequence[str]) -> str:
        """The metadata field is a string, one of `values`."""

    @abc.abstractmethod
    def limit(self, n: int | None) -> str:
        """A LIMIT's value (None: no limit)."""

    @abc.abstractmethod
    def branch(self, select: str) -> str:
        """One ordered, limited branch of a `UNION ALL`."""

    # -- shared ---------------------------------------------------------------------------

    def term(self, term: Term) -> str:
        match term:
            case Compare(column, op, value):
                return f"j.{column} {op} {self.param(value, column)}"
            case OneOf(column, values):
                return f"j.{column} {self.one_of(values, 'int')}"
            case KeyIn(pairs):
                return self.key_in(pairs)
            case Tagged(tags, negate):
                return (f"{'NOT ' if negate else ''}EXISTS (SELECT 1 FROM job_tags t"
                        f" WHERE t.project_id = j.project_id AND t.tag {self.one_of(tags, 'text')}"
                        " AND t.spider_id = j.spider_id AND t.job_no = j.job_no)")
            case MetaIn(field, values):
                return self.meta_in(field, values)
            case Never():
                return self.false
        raise TypeError(term)  # pragma: no cover - the union above is closed

    def where(self, terms: Sequence[Term]) -> str:
        return " AND ".join(self.term(t) for t in terms)

    def list_sql(self, scan: Scan, columns: str, source: str) -> str:
        """The rows of `scan`, highest position first; one index scan per branch."""
        if len(scan.branches) == 1:
            sql = (f"SELECT {columns} {source} WHERE {self.where(scan.where(scan.branches[0]))}"
                   " ORDER BY j.position DESC")
        else:
            sql = " UNION ALL ".join(
                self.branch(f"SELECT {columns} {source} WHERE {self.where(scan.where(branch))}"
                            f" ORDER BY j.position DESC LIMIT {self.limit(scan.branch_limit)}")
                for branch in scan.branches
            ) + " ORDER BY 4 DESC"
        # placeholders are numbered in the order they are rendered: the window comes last
        return sql + f" LIMIT {self.limit(scan.limit)} OFFSET {self.param(scan.offset, 'position')}"

    def count_sql(self, scan: Scan) -> str:
        """How many rows `scan` matches (its window aside): one count per branch, added."""
        return "SELECT " + " + ".join(
            f"(SELECT count(*) FROM jobs j WHERE {self.where(scan.where(branch))})"
            for branch in scan.branches
        )

    def tag_count_sql(self, count: TagCount) -> str:
        """How many jobs `count` matches, from the maintained counts: a few rows of
        `tag_counts` (less than those of `state_counts`, with `negate`)."""

        def total(table: str, tag: str | None) -> str:
            where = f"c.project_id = {self.param(count.project, 'project_id')}"
            if tag is not None:
                where += f" AND c.tag = {self.param(tag)}"
            if count.spiders is not None:
                where += f" AND c.spider_id {self.one_of(count.spiders, 'int')}"
            where += f" AND c.state {self.one_of(count.states, 'int')}"
            return f"(SELECT COALESCE(SUM(c.n), 0) FROM {table} c WHERE {where})"

        # placeholders are numbered in the order they are rendered: left to right
        if not count.negate:
            return "SELECT " + total("tag_counts", count.tag)
        every = total("state_counts", None)
        return f"SELECT {every} - {total('tag_counts', count.tag)}"
