"""SQL of a `jobq.domain.filters.Scan`: the statement shapes shared by both backends, with
a `Dialect` for what SQLite and PostgreSQL spell differently (placeholders, lists of
values, JSON). The filters themselves are decided in `jobq.domain.filters`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jobq.domain import rows
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

    @abc.abstractmethod
    def json_string(self, expression: str) -> str:
        """A text value as a JSON string (escaped exactly as orjson does)."""

    #: a `%` in a statement's text (psycopg reads one as the start of a placeholder)
    percent = "%"

    def text(self, pieces: Sequence[str | TextValue]) -> str:
        """The SQL expression of the text of `pieces`, joined with `||`."""
        return "(" + " || ".join(
            _literal(p.replace("%", self.percent)) if isinstance(p, str)
            else f"COALESCE({p.sql}, '')" if p.optional else p.sql
            for p in _merged(pieces)) + ")"

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

    def list_sql(self, scan: Scan, columns: str, source: str, order: int = 4) -> str:
        """The rows of `scan`, highest position first; one index scan per branch (`order`:
        the number of the position among `columns`)."""
        if len(scan.branches) == 1:
            sql = (f"SELECT {columns} {source} WHERE {self.where(scan.where(scan.branches[0]))}"
                   " ORDER BY j.position DESC")
        else:
            sql = " UNION ALL ".join(
                self.branch(f"SELECT {columns} {source} WHERE {self.where(scan.where(branch))}"
                            f" ORDER BY j.position DESC LIMIT {self.limit(scan.branch_limit)}")
                for branch in scan.branches
            ) + f" ORDER BY {order} DESC"
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


# -- rows as JSON text (issue 9, item 3) ----------------------------------------------------

def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _member(name: str, first: bool) -> str:
    """The text before a member's value: its name as JSON, after `{` or `,`."""
    return ("{" if first else ",") + orjson.dumps(name).decode() + ":"


@dataclass(frozen=True, slots=True)
class TextValue:
    """An SQL expression in a row's text."""

    sql: str
    #: an integer, never NULL
    integer: bool = False
    #: NULL is written as nothing: an optional member is one such expression of its
    #: whole text, NULL when the member is left out
    optional: bool = False


def _merged(pieces: Sequence[str | TextValue]) -> list[str | TextValue]:
    """Neighbouring literal texts joined, so the database joins once what is left."""
    out: list[str | TextValue] = []
    for piece in pieces:
        if isinstance(piece, str) and out and isinstance(out[-1], str):
            out[-1] += piece
        else:
            out.append(piece)
    return out


class RowText:
    """The SQL expression of one row's JSON text, as `rows.LIST_ROW` declares it, for
    both backends (`Dialect.text` joins the pieces in the way that is fastest there;
    `Dialect.json_string` is the other difference). `project` and `now` are written as
    numbers into the statement (they are integers): a `UNION ALL` of branches repeats
    the expression."""

    def __init__(self, dialect: Dialect, project: int, now: int, shift: int) -> None:
        self.dialect = dialect
        self.project = int(project)
        self.now = int(now)
        self.shift = int(shift)

    def sql(self, members: Sequence[rows.Member]) -> str:
        if not members or self._optional(members[0]):
            raise ValueError("a row starts with a member it always has")
        pieces: list[str | TextValue] = []
        for i, member in enumerate(members):
            pieces += self._pieces(member, i == 0)
        return self.dialect.text([*pieces, "}"])

    @staticmethod
    def _optional(member: rows.Member) -> bool:
        return member.source in (rows.Source.ENTERED, rows.Source.TAGS, rows.Source.COUNTERS)

    def _pieces(self, member: rows.Member, first: bool) -> list[str | TextValue]:
        source = member.source
        name = _member(member.name, first)
        ts = f"(j.position >> {self.shift})"
        if source is rows.Source.KEY:
            return [f'{name}"{self.project}/', TextValue("j.spider_id", integer=True), "/",
                    TextValue("j.job_no", integer=True), '"']
        if source is rows.Source.TS:
            return [name, TextValue(ts, integer=True)]
        if source is rows.Source.STATE:
            labels = {int(s): _literal(orjson.dumps(s.label).decode()) for s in rows.ENTERED_STATES}
            whens = " ".join(f"WHEN {state} THEN {label}" for state, label in labels.items())
            return [name, TextValue(f"CASE j.state {whens} END")]
        if source is rows.Source.ELAPSED:
            return [name, TextValue(f"({self.now} - {ts})", integer=True)]
        if source is rows.Source.SPIDER:
            return [name, TextValue(self.dialect.json_string("s.name"))]
        if source is rows.Source.ENTERED:
            assert member.state is not None
            entered = f"(j.{member.state.label}_position >> {self.shift})"
            return [TextValue(f"{_literal(name)} || {entered}", optional=True)]
        if source is rows.Source.TAGS:
            # stored as orjson writes them; an empty list is no tags
            return [TextValue(f"{_literal(name)} || NULLIF(j.tags, '[]')", optional=True)]
        if source is rows.Source.COUNTERS:
            # the stored object's members, spliced: `{"items":1,...}` less its braces
            return [TextValue(f"CASE WHEN j.state = {int(rows.COUNTED_STATE)}"
                              " AND length(j.counters) > 2"
                              " THEN ',' || substr(j.counters, 2, length(j.counters) - 2) END",
                              optional=True)]
        raise ValueError(f"{source} is not rendered in SQL")
