"""The records that pass between the queue service and storage: a push line, an update,
a list query, a listed job, an API key. Values only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from jobq.domain import jobs
from jobq.domain.jobs import JobKey, SpiderKey, State


@dataclass(slots=True)
class NewJob:
    """One line of `push`, validated."""

    spider: str
    state: State
    priority: int
    unique: str | None
    tags: list[str] | None
    #: the metadata to store, without the server's state/time/actor fields
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pushed:
    """The outcome of one `push` line: the new key, or the active job with the same
    `unique` value."""

    key: JobKey | None
    duplicate_of: JobKey | None = None


@dataclass(slots=True)
class JobUpdate:
    """One line of `update`."""

    target: JobKey | SpiderKey
    state: State | None
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Updated:
    key: JobKey
    prevstate: State


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What a cancel did: `count` jobs were pending or running (the answer), of which
    `finished` were pending and finished by it (the rest recorded the request)."""

    count: int
    finished: int

    @classmethod
    def of(cls, states: Sequence[int]) -> Cancelled:
        """The cancel of jobs that were in these states (pending or running)."""
        return cls(len(states), sum(1 for state in states if state == State.PENDING))


@dataclass(slots=True)
class ListQuery:
    """The filters shared by `list`, `count` and `summary`."""

    states: tuple[State, ...] = (State.FINISHED,)
    spiders: tuple[int, ...] | None = None  # spider ids; () matches nothing
    has_tags: tuple[str, ...] = ()
    lacks_tags: tuple[str, ...] = ()
    keys: tuple[JobKey, ...] | None = None
    startts: int | None = None
    endts: int | None = None
    #: position bound from `stop` (exclusive), see `Storage.stop_position`
    after_position: int | None = None
    #: legacy `close_reason` filter values
    close_reasons: tuple[str, ...] = ()
    count: int | None = 1000
    start: int = 0
    #: load the whole metadata of each job (for `jobmeta`)
    with_meta: bool = False


class JobRecord(NamedTuple):
    """A job as `list` sees it (a tuple: a list may read tens of thousands)."""

    key: JobKey
    spider: str
    state: State
    position: int
    #: position of each state the job entered
    positions: dict[State, int]
    tags: list[str] | None
    meta: dict[str, Any] | None = None
    #: the outcome counters stored with the metadata (`changes.stored_counters`)
    counters: dict[str, int] | None = None


def entered_positions(columns: Sequence[int | None]) -> dict[State, int]:
    """The position of each state a job entered, from its four position columns
    (pending, running, finished, deleted). Written out: it runs once per listed row."""
    p0, p1, p2, p3 = columns
    positions = {}
    if p0 is not None:
        positions[State.PENDING] = p0
    if p1 is not None:
        positions[State.RUNNING] = p1
    if p2 is not None:
        positions[State.FINISHED] = p2
    if p3 is not None:
        positions[State.DELETED] = p3
    return positions


def last_entered(columns: Sequence[int | None], states: Sequence[State]) -> int | None:
    """Where `stop` starts: the last position at which the job entered one of `states`."""
    entered = entered_positions(columns)
    found = [entered[s] for s in states if s in entered]
    return max(found) if found else None


def job_record(project: int, row: Sequence[Any], name: str, meta: str | None) -> JobRecord:
    """A job as storage reads it: `row` is (spider id, job number, state, position, the
    four position columns, tags as JSON, counters as JSON); `meta`, the stored metadata,
    when asked for."""
    positions = entered_positions(row[4:8])
    state = jobs.BY_NUMBER[row[2]]
    tags = row[8]
    counters = row[9]
    return JobRecord(
        JobKey(project, row[0], row[1]), name, state, row[3], positions,
        orjson.loads(tags) if tags else None,
        None if meta is None else jobs.full_meta(orjson.loads(meta), project, name, state,
                                                 positions),
        orjson.loads(counters) if counters else None,
    )


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (the secret itself is never stored, only its hash)."""

    key_id: int
    name: str
    #: None for an admin key
    project: int | None
    created_ms: int
    revoked_ms: int | None = None


@dataclass(slots=True)
class StartRequest:
    params: dict[str, Any] = field(default_factory=dict)
    botgroup: str | None = None
