"""What a row of `list` and `summary` holds, declared once.

A row is a JSON object whose members come in the order of `LIST_ROW` (a plain row) or
`JOBMETA_ROW` (a row with `jobmeta`: the fields asked for instead of spider and times).
Two renderers read these declarations and nothing else about rows: `jobq.core.queue.
render_row` builds a row from a `JobRecord` in Python, and storage builds the JSON text of
plain rows in SQL (`jobq.storage._sql_filters.RowText`, shared by both backends),
so that a list of 10,000 jobs costs one query and one write rather than 10,000 Python
objects (issue 9, item 3). Both give the same bytes (tests/storage/test_same_bytes.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jobq.domain.jobs import TIME_FIELD, State


class Source(enum.Enum):
    """Where a member's value comes from; the optional ones are left out when empty."""

    #: "project/spider/job"
    KEY = enum.auto()
    #: the time of the job's position (`jobs.ts_of`)
    TS = enum.auto()
    #: the label of the job's state
    STATE = enum.auto()
    #: the listing's now less `ts`
    ELAPSED = enum.auto()
    #: the spider's name
    SPIDER = enum.auto()
    #: the time the job entered `Member.state`; left out when it never did
    ENTERED = enum.auto()
    #: the job's tags; left out when it has none
    TAGS = enum.auto()
    #: the metadata fields asked for (`jobmeta`), each when the metadata has it and no
    #: member before has its name
    JOBMETA = enum.auto()
    #: the members of the outcome counters (`changes.stored_counters`), of a finished job
    #: that has them; a member before with the same name wins
    COUNTERS = enum.auto()


@dataclass(frozen=True, slots=True)
class Member:
    #: the member's name ("" for the sources that give members of their own)
    name: str
    source: Source
    #: the state of `Source.ENTERED`
    state: State | None = None


#: the states whose entry times a row shows, in this order
ENTERED_STATES = (State.PENDING, State.RUNNING, State.FINISHED, State.DELETED)
#: the state whose rows show the outcome counters
COUNTED_STATE = State.FINISHED

_HEAD = (Member("key", Source.KEY), Member("ts", Source.TS), Member("state", Source.STATE),
         Member("elapsed", Source.ELAPSED))

#: a plain row of list/summary (no metadata read)
LIST_ROW: tuple[Member, ...] = (
    *_HEAD, Member("spider", Source.SPIDER),
    *(Member(TIME_FIELD[s], Source.ENTERED, s) for s in ENTERED_STATES),
    Member("tags", Source.TAGS), Member("", Source.COUNTERS),
)

#: a row with `jobmeta` (list/summary with jobmeta, jobsummary)
JOBMETA_ROW: tuple[Member, ...] = (
    *_HEAD, Member("tags", Source.TAGS), Member("", Source.JOBMETA), Member("", Source.COUNTERS),
)
