"""The queue rules, as pure functions."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobq import errors
from jobq.core.queue import render_row
from jobq.domain import changes, jobs
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import JobRecord, NewJob

P, R, F, D = State.PENDING, State.RUNNING, State.FINISHED, State.DELETED


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (P, R, True), (R, F, True), (F, D, True), (P, F, True), (P, D, True), (R, D, True),
        (P, P, True), (R, R, True), (F, F, True), (D, D, True),
        (R, P, False), (F, P, False), (F, R, False), (D, P, False), (D, R, False),
        (D, F, False),
    ],
)
def test_transitions(current: State, target: State, allowed: bool) -> None:
    assert jobs.can_move(current, target) is allowed


@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=200),
       st.integers(min_value=1_600_000_000_000, max_value=2_000_000_000_000))
def test_positions_always_grow_and_ts_never_goes_back(steps: list[int], start_ms: int) -> None:
    last, now = 0, start_ms
    for step in steps:  # the clock may stand still or step back
        now += step
        position = jobs.next_position(last, now)
        assert position > last
        assert jobs.ts_of(position) >= jobs.ts_of(last)
        assert jobs.ts_of(position) >= now or jobs.ts_of(last) >= now
        last = position


def test_ts_and_position_floor_agree() -> None:
    position = jobs.next_position(0, 1_397_762_393_489)
    assert jobs.ts_of(position) == 1_397_762_393_489
    assert jobs.position_floor(1_397_762_393_489) <= position < jobs.position_floor(
        1_397_762_393_490)


@pytest.mark.parametrize("text", ["53/7/81", "1/1/1"])
def test_job_keys_parse_and_print(text: str) -> None:
    assert str(JobKey.parse(text)) == text


@pytest.mark.parametrize("text", ["53/7", "53/7/0", "a/b/c", "53/7/81/1", "", "53//1", "-1/2/3",
                                  " 53/7/81", 53])
def test_bad_job_keys_name_the_parameter(text: object) -> None:
    with pytest.raises(errors.BadRequest, match=r"^stop: "):
        JobKey.parse(text, "stop")


def test_update_targets_are_job_or_spider_keys() -> None:
    assert jobs.parse_target("53/7") == SpiderKey(53, 7)
    assert jobs.parse_target("53/7/1") == JobKey(53, 7, 1)
    with pytest.raises(errors.BadRequest):
        jobs.parse_target("53")


def test_states_parse_by_label_only() -> None:
    assert State.parse("finished") is F
    for bad in ("removed", "FINISHED", "", None, 2):
        with pytest.raises(errors.BadRequest, match="unknown state"):
            State.parse(bad)  # type: ignore[arg-type]


def test_new_job_metadata_keeps_client_fields_but_not_server_ones() -> None:
    meta = jobs.stamp_new({"x": 1, "state": "finished", "project": 9, "auth": "t"}, 53, "s",
                          R, 1000, "alice")
    # pushed as running: the actor is `started_by` only (no `scheduled_by`), as hosted
    assert meta == {"x": 1, "project": 53, "spider": "s",
                    "state": "running", "running_time": 1000, "started_by": "alice"}


@pytest.mark.parametrize("state", [P, R, F, D])
def test_new_columns_are_those_of_the_stamped_metadata(state: State) -> None:
    """`changes.new_columns` is computed before a job has a position or a project's lock:
    its columns must be those of the metadata stamped with the real ones."""
    meta = {"a": 1, "scheduled_by": "client", "project": 9, "pending_time": 5,
            "scrapystats": {"item_scraped_count": 3}, "tags": ["x"], "z": [None]}
    job = NewJob("s1", state, 2, None, ["x"], meta)
    stamped = jobs.stamp_new(meta, 53, "s1", state, 1_796_000_000_000, "alice")
    assert changes.new_columns(job, "alice") == (
        '["x"]', changes.encode(jobs.stored_form(stamped)), changes.stored_counters(stamped))


def test_stored_and_full_metadata_round_trip() -> None:
    full = jobs.stamp_new({"x": 1}, 53, "s", P, 1000, "a")
    stored = jobs.stored_form(full)
    assert "state" not in stored and "pending_time" not in stored and stored["x"] == 1
    position = jobs.position_floor(1000)
    assert jobs.full_meta(stored, 53, "s", P, {P: position}) == full


def test_cancel_finishes_pending_and_flags_running() -> None:
    meta: dict[str, object] = {}
    assert jobs.cancel(meta, P, 5, "bob") is F
    assert meta["close_reason"] == "cancelled" and meta["state"] == "finished"
    running: dict[str, object] = {}
    assert jobs.cancel(running, R, 7, "bob") is None
    assert running == {"cancel_requested_time": 7, "cancelled_by": "bob"}
    assert jobs.cancel(running, R, 9, "eve") is None and running["cancel_requested_time"] == 7
    assert jobs.cancel({}, F, 5, "bob") is None


# -- outcome counters (issue 10, item 5) -------------------------------------------------

STATS = {"item_scraped_count": 12, "response_received_count": 30, "log_count/INFO": 40,
         "log_count/WARNING": 3, "log_count/ERROR": 2, "finish_reason": "finished",
         "memusage/max": 123456}


def test_outcome_counters_come_from_scrapystats() -> None:
    assert jobs.outcome_counters({"scrapystats": STATS}) == {
        "items": 12, "pages": 30, "logs": 45, "errors": 2}
    # a stat missing or not an integer counts 0; no scrapystats: no counters
    odd = {"item_scraped_count": "12", "log_count/INFO": True, "log_count/DEBUG": 4}
    assert jobs.outcome_counters({"scrapystats": odd}) == {
        "items": 0, "pages": 0, "logs": 4, "errors": 0}
    assert jobs.outcome_counters({"scrapystats": [1]}) is None
    assert jobs.outcome_counters({"items": 3}) is None


def _record(state: State, meta: dict[str, object] | None) -> JobRecord:
    """A job as storage reads it: the counters column is what writes store
    (`changes.stored_counters`), whether the metadata was read or not."""
    stored = changes.stored_counters({"scrapystats": STATS})
    return JobRecord(JobKey(53, 1, 7), "s", state, 5 << jobs.POSITION_SHIFT,
                     {state: 5 << jobs.POSITION_SHIFT}, None, meta,
                     None if stored is None else orjson.loads(stored))


def test_rows_of_finished_jobs_show_the_stored_counters() -> None:
    meta = {"scrapystats": STATS, "close_reason": "finished", "items": "mine"}
    counters = {"items": 12, "pages": 30, "logs": 45, "errors": 2}
    last = render_row(_record(F, meta), 10_000, None)  # lastjobsummary reads the metadata
    assert {k: last[k] for k in counters} == counters
    plain = render_row(_record(F, None), 10_000, None)  # a plain list does not
    assert list(plain)[-4:] == ["items", "pages", "errors", "logs"]
    assert {k: plain[k] for k in counters} == counters
    asked = render_row(_record(F, meta), 10_000, ("close_reason", "items"))
    # a field asked for by name comes first, verbatim
    assert asked["close_reason"] == "finished" and asked["items"] == "mine"
    assert (asked["pages"], asked["logs"], asked["errors"]) == (30, 45, 2)
    # not finished: no counters
    assert "pages" not in render_row(_record(R, meta), 10_000, ("close_reason",))
    assert "pages" not in render_row(_record(R, None), 10_000, None)


def test_counters_are_stored_only_with_scrapystats() -> None:
    assert changes.stored_counters({"items": 3}) is None
    assert changes.stored_counters({"scrapystats": [1]}) is None
    assert orjson.loads(changes.stored_counters({"scrapystats": {}}) or "") == {
        "items": 0, "pages": 0, "errors": 0, "logs": 0}
