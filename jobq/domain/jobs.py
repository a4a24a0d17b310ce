"""The job model: keys, states, queue positions and the rules of state changes.

Pure functions and value objects only: no I/O. Storage backends call these so that
both backends apply exactly the same rules.

## Queue positions (the design behind exact incremental sync)

Every time a job enters a state it gets a *position* in its project:

    position = max(now_ms << POSITION_SHIFT, last_position_of_project + 1)

Positions only grow within a project, also when many jobs share a millisecond or the
clock steps back, and they are handed out while holding the project's write lock, so
the order of positions is the order of commits. `ts` (and `pending_time`,
`running_time`, ...) is `position >> POSITION_SHIFT`: the time, kept monotonic.

A queue (the jobs of a project in one state) is ordered by position. `list?stop=KEY`
returns the jobs whose position is above the position at which KEY's job entered the
listed state. Jobs keep the position of every state they entered, and a deleted job
keeps a tombstone, so the cursor still works after KEY's job moved on or was removed.
Because `startts`/`endts` are times, they map to position ranges too, and one index
(project, state, position) serves ordering, `stop`, `startts` and `endts`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from jobq import errors

#: Bits of a position below the millisecond: 1,024 state changes a millisecond per
#: project before `ts` runs ahead of the clock (it never goes back).
POSITION_SHIFT = 10

#: the largest integer the databases store (64-bit signed): a larger count, start or cap
#: means the same as this one
MAX_INT = 2**63 - 1

PRIORITY_MIN = 0
PRIORITY_MAX = 4
PRIORITY_DEFAULT = 2


class State(enum.IntEnum):
    """The four queues of a project, plus the tombstone of a removed job."""

    #: waiting to be claimed by startjob
    PENDING = 0
    #: claimed by a worker
    RUNNING = 1
    #: done (also: cancelled while pending)
    FINISHED = 2
    #: deleted through jobq update; never listed
    DELETED = 3
    #: removed entirely (DELETE jobs/K); kept only so that `stop` still finds it
    REMOVED = 4

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str, what: str = "state") -> State:
        state = _STATES_BY_LABEL.get(text) if isinstance(text, str) else None
        if state is None:
            raise errors.BadRequest(
                f"{what}: unknown state {text!r} (expected pending, running, finished or deleted)"
            )
        return state


_LABELS = {s: s.name.lower() for s in State}
#: states by number, faster than calling State(n) for every row read
BY_NUMBER = tuple(State)
_STATES_BY_LABEL = {s.label: s for s in State if s is not State.REMOVED}

#: The queues that `summary` reports and `list` may list.
LISTABLE = (State.PENDING, State.RUNNING, State.FINISHED)

#: Metadata field holding the time a job entered each state, and who moved it there.
TIME_FIELD: dict[State, str] = {s: f"{s.label}_time" for s in State if s is not State.REMOVED}
ACTOR_FIELD: dict[State, str] = {
    State.PENDING: "scheduled_by",
    State.RUNNING: "started_by",
    State.FINISHED: "completed_by",
    State.DELETED: "deleted_by",
}

_ALLOWED = {
    State.PENDING: {State.PENDING, State.RUNNING, State.FINISHED, State.DELETED},
    State.RUNNING: {State.RUNNING, State.FINISHED, State.DELETED},
    State.FINISHED: {State.FINISHED, State.DELETED},
    State.DELETED: {State.DELETED},
}


def can_move(current: State, target: State) -> bool:
    return target in _ALLOWED.get(current, ())


def sources(target: State) -> list[State]:
    """The states from which a job may move to `target` (`can_move`)."""
    return [state for state in State if can_move(state, target)]


def update_target(prev: State, wanted: State | None, job: str | None) -> State | None:
    """The state an update moves a job to (its own when `wanted` is None). A move the rules
    refuse raises `Conflict` for a job named by its key (`job`), and skips the job (None)
    when it was reached through its spider's key."""
    target = wanted if wanted is not None else prev
    if can_move(prev, target):
        return target
    if job is not None:
        raise errors.Conflict(f"{job} cannot go from {prev.label} to {target.label}")
    return None


def ts_of(position: int) -> int:
    return position >> POSITION_SHIFT


def next_position(last_position: int, now_ms: int) -> int:
    return max(now_ms << POSITION_SHIFT, last_position + 1)


def position_floor(ts_ms: int) -> int:
    """The lowest position whose `ts` is `ts_ms`."""
    return ts_ms << POSITION_SHIFT


#: Ids (project, spider, job number) have at most 18 digits, as the hosted service's keys.
MAX_ID = 10**18 - 1
_ID = r"[1-9][0-9]{0,17}"
_JOB_KEY = re.compile(rf"({_ID})/({_ID})/({_ID})")
_SPIDER_KEY = re.compile(rf"({_ID})/({_ID})")
_ID_RE = re.compile(_ID)


class JobKey(NamedTuple):
    """`project/spider/job`, e.g. `53/7/81`. A tuple: lists build thousands of them."""

    project: int
    spider: int
    job: int

    def __str__(self) -> str:
        return f"{self.project}/{self.spider}/{self.job}"

    @classmethod
    def parse(cls, text: Any, what: str = "key") -> JobKey:
        match = _JOB_KEY.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise errors.BadRequest(f"{what}: {text!r} is not a job key like 53/7/81")
        project, spider, job = match.groups()
        return cls(int(project), int(spider), int(job))


@dataclass(frozen=True, slots=True)
class SpiderKey:
    """`project/spider`, e.g. `53/7`: all jobs of one spider."""

    project: int
    spider: int

    def __str__(self) -> str:
        return f"{self.project}/{self.spider}"


def parse_target(text: Any, what: str = "key") -> JobKey | SpiderKey:
    """A job key or a spider key, as `update` accepts."""
    if isinstance(text, str):
        match = _SPIDER_KEY.fullmatch(text)
        if match:
            return SpiderKey(int(match[1]), int(match[2]))
    return JobKey.parse(text, what)


def parse_id(text: str, what: str) -> int:
    if not _ID_RE.fullmatch(text):
        raise errors.BadRequest(f"{what}: {text!r} is not a positive integer")
    return int(text)


def enter_state(meta: dict[str, Any], state: State, ts: int, actor: str) -> None:
    """Record in `meta` that the job entered `state` at `ts`, moved by `actor`."""
    meta["state"] = state.label
    meta[TIME_FIELD[state]] = ts
    meta[ACTOR_FIELD[state]] = actor


#: Metadata the server owns: a client cannot set these through push, update or
#: metadata POST (state changes go through jobq).
SERVER_FIELDS = frozenset(
    {"key", "auth", "_key", "state", "project", "spider", "pending_time", "running_time",
     "finished_time", "deleted_time"}
)


def stamp_new(
    meta: dict[str, Any], project: int, spider: str, state: State, ts: int, actor: str
) -> dict[str, Any]:
    """The metadata of a job created by push: the client's fields plus the server's. The
    actor goes only in the field of the state the job enters (`scheduled_by` for a pending
    job, `started_by` for a running one, ...), as the hosted service records it."""
    stamped = {k: v for k, v in meta.items() if k not in SERVER_FIELDS}
    stamped["project"] = project
    stamped["spider"] = spider
    enter_state(stamped, state, ts, actor)
    return stamped


def merge_fields(meta: dict[str, Any], fields: dict[str, Any]) -> None:
    """Merge client fields into metadata; the server's own fields are not theirs to set."""
    for name, value in fields.items():
        if name not in SERVER_FIELDS:
            meta[name] = value


def tags_of(meta: dict[str, Any]) -> list[str] | None:
    """The job's tags as stored for filtering: a list of strings, or None."""
    tags = meta.get("tags")
    if isinstance(tags, list) and tags:
        return [t for t in tags if isinstance(t, str)] or None
    return None


CANCELLED = "cancelled"


def cancel(meta: dict[str, Any], state: State, ts: int, actor: str) -> State | None:
    """Cancel a job: the state it moves to (finished for a pending job), or None when it
    stays where it is. A running job only records the request, for its worker."""
    if state is State.PENDING:
        meta["close_reason"] = CANCELLED
        meta["cancelled_by"] = actor
        enter_state(meta, State.FINISHED, ts, actor)
        return State.FINISHED
    if state is State.RUNNING:
        meta.setdefault("cancel_requested_time", ts)
        meta.setdefault("cancelled_by", actor)
    return None


#: Metadata that storage derives from a job's columns instead of storing it in the
#: metadata blob: smaller rows write faster, and these can never disagree with the columns.
DERIVED_FIELDS = frozenset({"project", "spider", "state", *TIME_FIELD.values()})


def stored_form(meta: dict[str, Any]) -> dict[str, Any]:
    """The part of a job's metadata that storage keeps as a blob."""
    return {k: v for k, v in meta.items() if k not in DERIVED_FIELDS}


def full_meta(
    stored: dict[str, Any], project: int, spider: str, state: State,
    positions: dict[State, int],
) -> dict[str, Any]:
    """A job's whole metadata: the stored blob plus the fields derived from its columns."""
    meta: dict[str, Any] = {"project": project, "spider": spider, "state": state.label}
    meta.update(stored_form(stored))
    for entered, position in positions.items():
        meta[TIME_FIELD[entered]] = ts_of(position)
    return meta


# -- outcome counters (issue 10, item 5) ---------------------------------------------------

#: the counters a finished job's rows show, and the Scrapy stat each is read from
_COUNTER_STATS = (("items", "item_scraped_count"), ("pages", "response_received_count"),
                  ("errors", "log_count/ERROR"))
#: the `log_count/LEVEL` stats Scrapy keeps (its logging levels): looked up, not searched
#: for among a hundred stats, as rows are rendered by the thousand
_LOG_COUNTS = tuple(f"log_count/{level}"
                    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))


def _stat(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def outcome_counters(meta: dict[str, Any]) -> dict[str, int] | None:
    """`items`, `pages`, `logs` and `errors` of a job from its `scrapystats` (the Scrapy
    stats its runner stored), as the hosted rows show them; None without scrapystats.
    `logs` is the sum of the `log_count/LEVEL` stats of Scrapy's levels; a stat missing or
    not an integer is 0."""
    stats = meta.get("scrapystats")
    if not isinstance(stats, dict):
        return None
    counters = {name: _stat(stats.get(stat)) for name, stat in _COUNTER_STATS}
    counters["logs"] = sum(_stat(stats.get(name)) for name in _LOG_COUNTS)
    return counters
