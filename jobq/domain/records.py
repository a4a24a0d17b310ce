"""The records that pass between the queue service and storage: a push line, an update,
a list query, a listed job, an API key. Values only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
