"""What `list` and `count` read, decided once for both backends: a `ListQuery` becomes a
`Scan`, a description of the queues to read and the conditions on their rows, which
each backend only renders in its SQL dialect (`jobq.storage._sql_filters`).

A queue is read through the index (project, state, position) or, for one spider,
(project, spider, state, position). A list over several queues is one `UNION ALL` of
per-queue scans, each already in position order and limited to `count + start` rows, so
it costs the rows it returns rather than the jobs stored. Two limits keep that sound:

- `MAX_BRANCHES`: a filter naming many spiders would make one branch per state and
  spider (SQLite refuses a compound SELECT of more than 500); beyond the limit the
  spiders become one `spider_id IN (...)` condition of each state's branch.
- `MAX_INT`: the databases count in 64 bits, so `count + start` saturates there (a
  larger window means the same: all rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jobq.domain import jobs
from jobq.domain.jobs import MAX_INT, State
from jobq.domain.records import ListQuery

#: most per-queue branches of one statement; more spiders are filtered with `IN`
MAX_BRANCHES = 64

Column = Literal["project_id", "state", "spider_id", "position"]


@dataclass(frozen=True, slots=True)
class Compare:
    """`j.<column> <op> value`."""

    column: Column
    op: Literal["=", ">", ">=", "<"]
    value: int


@dataclass(frozen=True, slots=True)
class OneOf:
    """`j.<column>` is one of `values` (never empty)."""

    column: Column
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class KeyIn:
    """(spider, job) is one of `pairs` (never empty)."""

    pairs: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Tagged:
    """The job has one of `tags` (never empty); with `negate`, none of them."""

    tags: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class MetaIn:
    """The metadata field `field` is a string and one of `values` (never empty)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Never:
    """Matches no row."""


Term = Compare | OneOf | KeyIn | Tagged | MetaIn | Never


@dataclass(frozen=True, slots=True)
class Scan:
    """The rows of a list or count: the union of `branches` (each a conjunction of terms,
    one per queue read through its index), every branch also meeting `shared`."""

    branches: tuple[tuple[Term, ...], ...]
    shared: tuple[Term, ...]
    #: rows to return and to skip (None: all)
    limit: int | None
    offset: int

    @property
    def branch_limit(self) -> int | None:
        """Rows each branch of a union reads: enough for the window, at most MAX_INT."""
        return None if self.limit is None else min(self.limit + self.offset, MAX_INT)

    def where(self, branch: tuple[Term, ...]) -> tuple[Term, ...]:
        return branch + self.shared


def row_terms(project: int, query: ListQuery) -> tuple[Term, ...]:
    """The conditions on rows beyond queue and spider (empty: a count can come from the
    maintained per-queue counts)."""
    terms: list[Term] = []
    if query.after_position is not None:
        terms.append(Compare("position", ">", query.after_position))
    if query.startts is not None:
        terms.append(Compare("position", ">=", jobs.position_floor(query.startts)))
    if query.endts is not None:
        terms.append(Compare("position", "<", jobs.position_floor(query.endts)))
    if query.keys is not None:
        pairs = tuple(dict.fromkeys((k.spider, k.job) for k in query.keys if k.project == project))
        terms.append(KeyIn(pairs) if pairs else Never())
    if query.has_tags:
        terms.append(Tagged(tuple(dict.fromkeys(query.has_tags))))
    if query.lacks_tags:
        terms.append(Tagged(tuple(dict.fromkeys(query.lacks_tags)), negate=True))
    if query.close_reasons:
        terms.append(MetaIn("close_reason", tuple(dict.fromkeys(query.close_reasons))))
    return tuple(terms)


def queues(project: int, states: tuple[State, ...],
           spiders: tuple[int, ...] | None) -> tuple[tuple[Term, ...], ...]:
    """One branch per queue read: each state, times each spider while that keeps the
    statement within `MAX_BRANCHES`. No branch at all when no spider matched."""
    if spiders is not None and not spiders:
        return ()
    states = tuple(dict.fromkeys(states))
    spiders = None if spiders is None else tuple(dict.fromkeys(spiders))
    branches = []
    for state in states:
        base: tuple[Term, ...] = (Compare("project_id", "=", project),
                                  Compare("state", "=", int(state)))
        if spiders is None:
            branches.append(base)
        elif len(states) * len(spiders) <= MAX_BRANCHES:
            branches += [(*base, Compare("spider_id", "=", s)) for s in spiders]
        else:
            branches.append((*base, OneOf("spider_id", spiders)))
    return tuple(branches)


def scan(project: int, query: ListQuery) -> Scan | None:
    """The scan of a list or count; None when it can match no row."""
    branches = queues(project, query.states, query.spiders)
    if not branches or query.count == 0:
        return None
    return Scan(branches, row_terms(project, query), query.count, min(query.start, MAX_INT))


# -- counts by tag, from the maintained counts -------------------------------------------


@dataclass(frozen=True, slots=True)
class TagCount:
    """A count read from the counts kept per (tag, spider, state): the jobs of `states`
    (of `spiders`; None: all) that have `tag`, or with `negate` that lack it (the state
    counts less those that have it)."""

    project: int
    tag: str
    negate: bool
    states: tuple[int, ...]
    spiders: tuple[int, ...] | None


def tag_count(project: int, query: ListQuery) -> TagCount | None:
    """The maintained count that answers a count of `query`: when its only condition
    beyond state and spider is one tag to have or to lack. None otherwise: several tags
    are not a sum of their counts (a job may have more than one), and other conditions
    (time range, `stop`, keys) need the rows."""
    terms = row_terms(project, query)
    if len(terms) != 1 or not isinstance(terms[0], Tagged) or len(terms[0].tags) != 1:
        return None
    if not query.states or (query.spiders is not None and not query.spiders):
        return None  # matches nothing: the scan says so
    spiders = None if query.spiders is None else tuple(dict.fromkeys(query.spiders))
    return TagCount(project, terms[0].tags[0], terms[0].negate,
                    tuple(dict.fromkeys(int(s) for s in query.states)), spiders)
