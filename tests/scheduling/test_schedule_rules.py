"""The schedule rules (`jobq.domain.schedules`) with explicit times: next ticks across DST
changes, fixed intervals, catch-up after downtime, and bad timetables."""

from __future__ import annotations

import datetime
import itertools
import zoneinfo

import pytest

from jobq import errors
from jobq.domain import schedules as rules
from jobq.domain.schedules import ScheduleSpec

MADRID = zoneinfo.ZoneInfo("Europe/Madrid")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       tz: datetime.tzinfo = datetime.UTC, fold: int = 0) -> int:
    moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz, fold=fold)
    return int(moment.timestamp() * 1000)


def ticks(spec: ScheduleSpec, after: int, n: int) -> list[int]:
    found: list[int] = []
    for _ in range(n):
        tick = rules.next_tick(spec, after)
        assert tick is not None
        found.append(tick)
        after = tick
    return found


def local(tick: int, tz: datetime.tzinfo) -> str:
    return datetime.datetime.fromtimestamp(tick / 1000, tz).strftime("%m-%d %H:%M %z")


def test_nightly_cron_is_read_in_its_zone_not_utc() -> None:
    spec = ScheduleSpec("books", cron="0 3 * * *", tz="Europe/Madrid")
    found = ticks(spec, ms(2026, 1, 10, 12), 2)
    assert [local(t, MADRID) for t in found] == ["01-11 03:00 +0100", "01-12 03:00 +0100"]
    assert found[0] == ms(2026, 1, 11, 2)  # 02:00 UTC in winter


def test_spring_forward_gap_fires_once_right_after_the_gap() -> None:
    # 2026-03-29 02:00 -> 03:00 in Madrid: 02:30 does not exist that night
    spec = ScheduleSpec("books", cron="30 2 * * *", tz="Europe/Madrid")
    found = ticks(spec, ms(2026, 3, 27, 12), 4)
    assert [local(t, MADRID) for t in found] == [
        "03-28 02:30 +0100", "03-29 03:00 +0200", "03-30 02:30 +0200", "03-31 02:30 +0200"]


def test_fall_back_fold_fires_once() -> None:
    # 2026-10-25 03:00 -> 02:00 in Madrid: 02:30 happens twice that night
    spec = ScheduleSpec("books", cron="30 2 * * *", tz="Europe/Madrid")
    found = ticks(spec, ms(2026, 10, 23, 12), 4)
    assert [local(t, MADRID) for t in found] == [
        "10-24 02:30 +0200", "10-25 02:30 +0200", "10-26 02:30 +0100", "10-27 02:30 +0100"]
    # asking from inside the repeated hour (second pass) never gives the first 02:30 again
    second_pass = ms(2026, 10, 25, 2, 15, tz=MADRID, fold=1)
    assert rules.next_tick(spec, second_pass) == ms(2026, 10, 26, 2, 30, tz=MADRID)


def test_hourly_cron_over_the_fold_runs_every_real_hour() -> None:
    spec = ScheduleSpec("books", cron="0 * * * *", tz="America/New_York")
    # 2026-11-01 02:00 EDT -> 01:00 EST
    found = ticks(spec, ms(2026, 11, 1, 4, 30), 4)  # 00:30 EDT
    assert [b - a for a, b in itertools.pairwise(found)] == [3_600_000] * 3
    assert len(set(found)) == 4


def test_ticks_always_move_forward() -> None:
    spec = ScheduleSpec("books", cron="*/7 * * * *", tz="Europe/Madrid")
    found = ticks(spec, ms(2026, 10, 24, 22), 200)  # through the autumn fold
    assert found == sorted(set(found))


def test_fixed_interval_counts_from_its_anchor() -> None:
    spec = ScheduleSpec("books", every_ms=30_000, anchor_ms=1_000_000)
    assert rules.next_tick(spec, 0) == 1_030_000
    assert rules.next_tick(spec, 1_030_000) == 1_060_000
    assert rules.next_tick(spec, 1_030_001) == 1_060_000


@pytest.mark.parametrize(("text", "expected"), [
    ("every 30s", 30_000), ("6h", 21_600_000), ("every 1h30m", 5_400_000), ("1d", 86_400_000),
    ("every 1s", 1_000), ("1500ms", 1_500),
])
def test_intervals(text: str, expected: int) -> None:
    assert rules.parse_interval(text) == expected


@pytest.mark.parametrize("text", ["every 500ms", "0s", "every", "30", "soon", "every -5s", 30])
def test_bad_intervals(text: object) -> None:
    with pytest.raises(errors.BadRequest, match=r"^every: "):
        rules.parse_interval(text)


@pytest.mark.parametrize("expr", ["0 3 * *", "61 3 * * *", "0 3 * * * *", "* * 32 * *",
                                  "x y z", ""])
def test_bad_cron(expr: str) -> None:
    with pytest.raises(errors.BadRequest, match=r"^cron: "):
        rules.check_cron(expr)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "UTC+2", "../etc/passwd"])
def test_bad_zone(zone: str) -> None:
    with pytest.raises(errors.BadRequest, match=r"^tz: "):
        rules.parse_zone(zone)


def every_second(catch_up: str, catch_up_max: int = 10) -> ScheduleSpec:
    return ScheduleSpec("books", every_ms=1_000, anchor_ms=0, catch_up=catch_up,
                        catch_up_max=catch_up_max)


def test_on_time_tick_fires() -> None:
    for policy in rules.CATCH_UP:
        plan = rules.plan(every_second(policy), 5_000, 5_000)
        assert plan == rules.Plan((5_000,), 0, 6_000)


def test_a_second_late_still_fires_under_every_policy() -> None:
    spec = ScheduleSpec("books", cron="0 3 * * *", tz="UTC")
    tick = ms(2026, 6, 1, 3)
    for policy in rules.CATCH_UP:
        spec.catch_up = policy
        plan = rules.plan(spec, tick, tick + 1_500)
        assert plan.fire == (tick,) and plan.missed == 0


def test_catch_up_after_downtime() -> None:
    # down from tick 1 s to now 10.5 s: ticks 1..10 s are due
    latest = rules.plan(every_second("latest"), 1_000, 10_500)
    assert latest == rules.Plan((10_000,), 9, 11_000)
    everything = rules.plan(every_second("all", 100), 1_000, 10_500)
    assert everything.fire == tuple(range(1_000, 10_001, 1_000)) and everything.missed == 0
    bounded = rules.plan(every_second("all", 3), 1_000, 10_500)
    assert bounded == rules.Plan((8_000, 9_000, 10_000), 7, 11_000)
    # `none`: the newest due tick is only 0.5 s old, it fires; the rest are skipped
    assert rules.plan(every_second("none"), 1_000, 10_500) == rules.Plan((10_000,), 9, 11_000)


def test_catch_up_none_skips_a_tick_missed_long_ago() -> None:
    spec = ScheduleSpec("books", cron="0 3 * * *", tz="Europe/Madrid", catch_up="none")
    tick = ms(2026, 6, 1, 3, tz=MADRID)
    plan = rules.plan(spec, tick, tick + 3 * 3_600_000)  # the servers were down until 06:00
    assert plan.fire == () and plan.missed == 1
    assert plan.next_tick_ms == ms(2026, 6, 2, 3, tz=MADRID)
    latest = ScheduleSpec("books", cron="0 3 * * *", tz="Europe/Madrid")
    assert rules.plan(latest, tick, tick + 3 * 3_600_000).fire == (tick,)


def test_long_downtime_is_planned_without_walking_every_tick() -> None:
    year = 365 * 86_400_000
    plan = rules.plan(every_second("all", 5), 1_000, year)
    assert plan.fire == tuple(range(year - 4_000, year + 1, 1_000))
    assert plan.missed == year // 1_000 - 5
    cron = ScheduleSpec("books", cron="* * * * *", tz="UTC")
    start = ms(2025, 1, 1)
    late = rules.plan(cron, start, start + year)
    assert late.fire == (start + year,) and late.next_tick_ms == start + year + 60_000


def test_rare_cron_dates() -> None:
    spec = ScheduleSpec("books", cron="0 0 29 2 *", tz="UTC")  # leap days only
    tick = rules.next_tick(spec, ms(2026, 3, 1))
    assert tick == ms(2028, 2, 29)
