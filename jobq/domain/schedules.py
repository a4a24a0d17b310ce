"""Periodic jobs: what a schedule is and when it fires. Pure functions of explicit times
(milliseconds since the epoch); nothing here reads the clock.

A schedule fires on *ticks*: the times its cron expression (5 fields, read in the
schedule's IANA time zone) or its fixed interval names. Storage keeps, per schedule, the
first tick not yet handled (`next_tick_ms`); a node that finds it due computes a `Plan`
(which ticks to push, how many to skip) and commits the pushes together with the new
`next_tick_ms`, on the condition that `next_tick_ms` is still what it read. So one node
handles each tick, once, whichever nodes run (see `jobq.core.schedules`).

## Catch-up after downtime (or a late scheduler)

When several ticks are due at once (the servers were down, or busy), `catch_up` says
which fire:

* `latest` (default): the newest due tick fires, older ones are skipped (and counted);
* `all`: every due tick fires, up to the newest `catch_up_max`;
* `none`: the newest due tick fires only if it is at most `ON_TIME_MS` old (a
  scheduler a few seconds late still fires it); a tick missed by more is skipped.

## Daylight saving time

Cron expressions are read in the schedule's zone through `cronsim`, which behaves like
Debian's cron for a job at a fixed time: a time that does not exist (the spring gap)
fires once, right after the gap; a time that happens twice (the autumn fold) fires once,
at its first occurrence. Ticks always move strictly forward in UTC, so a wall-clock time
repeated by the fold can never fire twice.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cronsim import CronSim, CronSimError

from jobq import errors

#: a due tick at most this old still fires with `catch_up: none` (ms)
ON_TIME_MS = 60_000
#: shortest fixed interval (ms) and longest (ms: a year)
MIN_INTERVAL_MS = 1_000
MAX_INTERVAL_MS = 366 * 24 * 3600 * 1000
#: default and largest bound of `catch_up: all`
CATCH_UP_MAX_DEFAULT = 10
CATCH_UP_MAX_LIMIT = 1000
#: a cron schedule further behind than this skips straight to this window (ms: a week)
CRON_LOOKBACK_MS = 7 * 24 * 3600 * 1000

#: longest zone name accepted (IANA names are far shorter)
MAX_ZONE_NAME = 64

OVERLAP = ("skip", "allow")
CATCH_UP = ("latest", "none", "all")

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_INTERVAL = re.compile(r"(?:every\s+)?((?:\d+(?:ms|s|m|h|d)\s*)+)", re.IGNORECASE)
_PART = re.compile(r"(\d+)(ms|s|m|h|d)", re.IGNORECASE)


def parse_interval(text: Any, where: str = "every") -> int:
    """`every 30s`, `6h`, `1h30m`, `2d` -> milliseconds (at least one second)."""
    if not isinstance(text, str):
        raise errors.BadRequest(f"{where}: expected a text like '30s' or '6h'")
    match = _INTERVAL.fullmatch(text.strip())
    if match is None:
        raise errors.BadRequest(
            f"{where}: {text!r} is not an interval like '30s', '15m', '6h' or '1d'"
        )
    total = sum(int(n) * _UNITS_MS[unit.lower()] for n, unit in _PART.findall(match[1]))
    if total < MIN_INTERVAL_MS:
        raise errors.BadRequest(f"{where}: {text!r} is shorter than 1 s")
    if total > MAX_INTERVAL_MS:
        raise errors.BadRequest(f"{where}: {text!r} is longer than 366 days")
    return total


def parse_zone(name: Any, where: str = "tz") -> zoneinfo.ZoneInfo:
    """An IANA zone: the system's zone database, else the pinned `tzdata` package (slim
    containers ship no /usr/share/zoneinfo)."""
    if not isinstance(name, str) or not name or len(name) > MAX_ZONE_NAME:
        raise errors.BadRequest(f"{where}: expected an IANA time zone name like Europe/Madrid")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise errors.BadRequest(f"{where}: unknown time zone {name!r}") from None


def check_cron(expr: Any, where: str = "cron") -> str:
    """A 5-field cron expression (minute hour day-of-month month day-of-week)."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise errors.BadRequest(
            f"{where}: expected 5 fields (minute hour day month weekday), got {expr!r}"
        )
    try:
        CronSim(expr, datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    except (CronSimError, ValueError) as exc:
        raise errors.BadRequest(f"{where}: {expr!r} does not parse: {exc}") from None
    return " ".join(expr.split())


@dataclass(slots=True)
class ScheduleSpec:
    """What a schedule pushes, and when. Exactly one of `cron` and `every_ms`."""

    spider: str
    cron: str | None = None
    tz: str = "UTC"
    every_ms: int | None = None
    #: fixed intervals count from here (the creation time unless given)
    anchor_ms: int = 0
    spider_args: dict[str, str] = field(default_factory=dict)
    job_settings: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    priority: int = 2
    units: int = 1
    #: a script job's command (`job_cmd`), instead of `scrapy crawl`
    job_cmd: list[str] | None = None
    overlap: str = "skip"
    catch_up: str = "latest"
    catch_up_max: int = CATCH_UP_MAX_DEFAULT
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleSpec:
        known = set(cls.__slots__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def when(self) -> str:
        """The timetable in words, for tables."""
        if self.cron is not None:
            return f"cron {self.cron} {self.tz}"
        return f"every {format_interval(self.every_ms or 0)}"


@dataclass(slots=True)
class Schedule:
    """A stored schedule and its progress."""

    schedule_id: int
    project: int
    spec: ScheduleSpec
    paused: bool
    #: the first tick not yet handled; None when the timetable has no further tick
    next_tick_ms: int | None
    created_ms: int
    updated_ms: int
    last_tick_ms: int | None = None
    last_job: str | None = None
    last_outcome: str | None = None
    last_fired_ms: int | None = None


def format_interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def next_tick(spec: ScheduleSpec, after_ms: int) -> int | None:
    """The first tick strictly after `after_ms` (None if the cron never fires again)."""
    if spec.every_ms is not None:
        if after_ms < spec.anchor_ms:
            return spec.anchor_ms + spec.every_ms
        done = (after_ms - spec.anchor_ms) // spec.every_ms
        return spec.anchor_ms + (done + 1) * spec.every_ms
    assert spec.cron is not None
    zone = zoneinfo.ZoneInfo(spec.tz)
    # cron has a 1-minute grain: start from the whole second, then insist on "after"
    start = datetime.datetime.fromtimestamp(after_ms // 1000, zone)
    ticks = CronSim(spec.cron, start)
    for _ in range(10_000):
        try:
            found = next(ticks)
        except StopIteration:
            return None
        ms = int(found.timestamp()) * 1000
        if ms > after_ms:  # a naive local time repeated by a DST fold can come out earlier
            return ms
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the due ticks of one schedule."""

    #: ticks to push, oldest first
    fire: tuple[int, ...]
    #: due ticks skipped by the catch-up policy
    missed: int
    #: the first tick after now (the new `next_tick_ms`)
    next_tick_ms: int | None


def plan(spec: ScheduleSpec, next_tick_ms: int, now_ms: int) -> Plan:
    """The due ticks (`next_tick_ms` .. now) and which of them fire under `catch_up`."""
    keep = max(1, min(spec.catch_up_max, CATCH_UP_MAX_LIMIT)) if spec.catch_up == "all" else 1
    due: deque[int] = deque(maxlen=keep)
    missed = 0
    tick: int | None = next_tick_ms
    if spec.cron is not None and tick is not None and now_ms - tick > CRON_LOOKBACK_MS:
        # far behind (long downtime): do not walk a month of minutes; the ticks before
        # the look-back window are skipped (counted as one gap)
        missed += 1
        tick = next_tick(spec, now_ms - CRON_LOOKBACK_MS)
    while tick is not None and tick <= now_ms:
        if len(due) == keep:
            missed += 1  # the oldest kept tick drops out
        due.append(tick)
        tick = next_tick(spec, tick)
        if spec.every_ms is not None and tick is not None and tick <= now_ms:
            further = (now_ms - tick) // spec.every_ms + 1  # due ticks from `tick` on
            if further > keep:  # jump over the ones that could never be kept
                jump = further - keep
                missed += jump
                tick += jump * spec.every_ms
    fire = list(due)
    if spec.catch_up == "none" and fire and now_ms - fire[-1] > ON_TIME_MS:
        missed += len(fire)
        fire = []
    return Plan(tuple(fire), missed, tick)


def outcome(job: object | None, duplicate_of: object | None, missed: int) -> str:
    """What happened at a schedule's last firing, in words (shown by `jobq schedule list`)."""
    parts = []
    if job is not None:
        parts.append(f"pushed {job}")
    elif duplicate_of is not None:
        parts.append(f"skipped: {duplicate_of} still pending or running")
    if missed:
        parts.append(f"{missed} missed tick{'s' if missed > 1 else ''} skipped (catch_up)")
    return "; ".join(parts) or "nothing"


def merge_tags(tags: list[str], add: Sequence[str], remove: Sequence[str]) -> list[str]:
    """`tags` without `remove`, then `add` (each tag once, in order)."""
    kept = [t for t in tags if t not in remove]
    return kept + [t for t in dict.fromkeys(add) if t not in kept]
