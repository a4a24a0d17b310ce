"""Properties of the scan a list or count reads (`jobq.domain.filters`), for any query a
client can send: the statement stays within what both databases take (64-bit numbers,
SQLite's 500 branches of a compound SELECT) and reads the queues the query names, each
once. Pure: no database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobq.domain import filters
from jobq.domain.filters import Compare, OneOf
from jobq.domain.jobs import LISTABLE, MAX_INT
from jobq.domain.records import ListQuery

ints = st.sampled_from([0, 1, 1000, MAX_INT]) | st.integers(min_value=0, max_value=MAX_INT)
queries = st.builds(
    ListQuery,
    states=st.lists(st.sampled_from(LISTABLE), min_size=1, max_size=4).map(tuple),
    spiders=(st.none() | st.lists(st.integers(1, 3000), max_size=30).map(tuple)
             | st.integers(0, 800).map(lambda n: tuple(range(1, n + 1)))),
    count=st.none() | ints,
    start=ints,
)


@given(queries)
def test_scans_fit_both_databases(query: ListQuery) -> None:
    scan = filters.scan(53, query)
    if scan is None:
        assert query.count == 0 or query.spiders == ()
        return
    assert len(scan.branches) <= max(filters.MAX_BRANCHES, len(LISTABLE))
    assert scan.offset <= MAX_INT
    assert scan.branch_limit is None or scan.branch_limit <= MAX_INT
    # each (state, spider) the query names is read by exactly one branch
    read: list[tuple[int, int | None]] = []
    for branch in scan.branches:
        state = next(t.value for t in branch if isinstance(t, Compare) and t.column == "state")
        spiders: tuple[int | None, ...] = (None,)
        for term in branch:
            if isinstance(term, Compare) and term.column == "spider_id":
                spiders = (term.value,)
            elif isinstance(term, OneOf):
                spiders = term.values
        read += [(state, s) for s in spiders]
    wanted = {(int(s), sp) for s in query.states
              for sp in (query.spiders if query.spiders is not None else (None,))}
    assert sorted(read, key=str) == sorted(wanted, key=str)
