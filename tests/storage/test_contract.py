"""The storage contract: every backend behaves the same (fixture `storage` runs each test
on a real SQLite file and on a fresh PostgreSQL database)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobq import errors
from jobq.domain import filters, jobs
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import Cancelled, JobUpdate, ListQuery, NewJob, StartRequest
from jobq.storage.base import UNITS_CAP, Storage

pytestmark = pytest.mark.anyio

P = 53


def new(spider: str = "s1", state: State = State.PENDING, priority: int = 2,
        unique: str | None = None, tags: list[str] | None = None, **meta: Any) -> NewJob:
    fields = dict(meta, priority=priority, units=1)
    if tags:
        fields["tags"] = tags
    return NewJob(spider, state, priority, unique, tags, fields)


async def push(storage: Storage, *jobs_: NewJob, project: int = P) -> list[JobKey]:
    pushed = await storage.push(project, list(jobs_), "tester")
    return [p.key for p in pushed if p.key is not None]


async def keys(storage: Storage, project: int = P, **query: Any) -> list[str]:
    return [str(r.key) for r in await storage.list_jobs(project, ListQuery(**query))]


async def move(storage: Storage, key: JobKey, state: State, **fields: Any) -> None:
    await storage.update(key.project, [JobUpdate(key, state, fields)], "tester")


async def test_push_numbers_jobs_per_spider_and_spiders_per_project(storage: Storage) -> None:
    created = await push(storage, new("a"), new("b"), new("a"))
    assert [str(k) for k in created] == ["53/1/1", "53/2/1", "53/1/2"]
    assert await storage.spider_id(P, "b", create=False) == 2
    assert await storage.spider_id(P, "zz", create=False) is None
    assert await storage.spider_id(P, "zz", create=True) == 3
    assert await push(storage, new("a"), project=54) == [JobKey(54, 1, 1)]


async def test_pushed_metadata_has_the_server_fields(storage: Storage) -> None:
    [key] = await push(storage, new("a", tags=["t1"], custom={"x": [1, 2]}))
    meta = await storage.get_job_meta(key)
    assert meta is not None
    assert meta["custom"] == {"x": [1, 2]}
    assert meta["project"] == P and meta["spider"] == "a" and meta["state"] == "pending"
    assert meta["scheduled_by"] == "tester" and meta["priority"] == 2 and meta["tags"] == ["t1"]
    assert isinstance(meta["pending_time"], int)


async def test_a_pushed_job_names_its_actor_only_for_the_state_it_enters(
    storage: Storage
) -> None:
    """As the hosted service records it: `started_by` alone for a job pushed running (no
    `scheduled_by`, no `pending_time`), `completed_by` alone for one pushed finished."""
    running, finished = await push(storage, new("a", State.RUNNING), new("a", State.FINISHED))
    actors = ("scheduled_by", "started_by", "completed_by")
    for key, actor, time_field in ((running, "started_by", "running_time"),
                                   (finished, "completed_by", "finished_time")):
        meta = await storage.get_job_meta(key)
        assert meta is not None
        assert [a for a in actors if a in meta] == [actor] and meta[actor] == "tester"
        assert time_field in meta and "pending_time" not in meta


async def test_unique_refuses_a_second_active_job(storage: Storage) -> None:
    pushed = await storage.push(P, [new(unique="h1"), new(unique="h1"), new(unique="h2")], "t")
    assert pushed[0].key == JobKey(P, 1, 1)
    assert pushed[1].key is None and pushed[1].duplicate_of == JobKey(P, 1, 1)
    assert pushed[2].key == JobKey(P, 1, 2)
    again = await storage.push(P, [new(unique="h1")], "t")
    assert again[0].duplicate_of == JobKey(P, 1, 1)
    await move(storage, JobKey(P, 1, 1), State.FINISHED)
    assert (await storage.push(P, [new(unique="h1")], "t"))[0].key == JobKey(P, 1, 3)


async def test_start_job_takes_highest_priority_then_oldest(storage: Storage) -> None:
    await push(storage, new(priority=1), new(priority=3), new(priority=3), new(priority=2))
    order = []
    while (claimed := await storage.start_job(P, StartRequest({"worker": "w1"}), "t")):
        key, meta = claimed
        order.append(str(key))
        assert meta["state"] == "running" and meta["started_by"] == "t"
        assert meta["worker"] == "w1" and meta["_shub_worker"] == "w1"
        assert meta["running_time"] >= meta["pending_time"]
    assert order == ["53/1/2", "53/1/3", "53/1/4", "53/1/1"]
    assert await storage.state_counts(P) == {State.RUNNING: 4, State.PENDING: 0}


async def test_list_is_newest_first_by_position_also_within_a_millisecond(
    storage: Storage,
) -> None:
    created = await push(storage, *[new(state=State.FINISHED) for _ in range(50)])
    listed = await storage.list_jobs(P, ListQuery())
    assert [r.key for r in listed] == created[::-1]
    positions = [r.position for r in listed]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == 50


async def test_a_large_push_stores_every_line_as_its_own_job(storage: Storage) -> None:
    """1,300 lines of two spiders, mixed states and tags (SQLite writes them in chunks of
    rows): each job holds its own line's fields, numbered and positioned in line order."""
    lines = [new("a" if i % 3 else "b", state=State.FINISHED if i % 5 == 0 else State.PENDING,
                 tags=[f"t{i % 7}"] if i % 2 else None, line=i) for i in range(1300)]
    created = await push(storage, *lines)
    assert len(created) == 1300
    numbers: dict[int, int] = {}
    for key in created:
        numbers[key.spider] = numbers.get(key.spider, 0) + 1
        assert key.job == numbers[key.spider]
    listed = await storage.list_jobs(P, ListQuery(states=(State.PENDING, State.FINISHED),
                                                  count=None, with_meta=True))
    assert [r.key for r in listed] == created[::-1]
    for record, line in zip(listed[::-1], lines, strict=True):
        assert record.meta is not None and record.meta["line"] == line.meta["line"]
        assert record.spider == line.spider and record.state is line.state
        assert record.tags == line.tags
    assert await storage.state_counts(P) == {State.PENDING: 1040, State.FINISHED: 260}
    assert await storage.count_jobs(P, ListQuery(states=(State.PENDING,), has_tags=("t3",))) == (
        sum(1 for i in range(1300) if i % 2 and i % 7 == 3 and i % 5))


async def test_one_named_job_is_listed_and_counted_by_its_key(storage: Storage) -> None:
    """One key (SQLite looks it up by its columns rather than a list of pairs), also when
    its spider and job numbers differ."""
    await push(storage, new("a"), new("b"), new("a"), new("b"), new("a"))
    for key in (JobKey(P, 1, 2), JobKey(P, 2, 1), JobKey(P, 1, 3)):
        assert await keys(storage, states=(State.PENDING,), keys=(key,)) == [str(key)]
        query = ListQuery(states=(State.PENDING,), keys=(key,), count=None)
        assert await storage.count_jobs(P, query) == 1
    assert await keys(storage, states=(State.PENDING,), keys=(JobKey(P, 2, 3),)) == []


async def test_stop_returns_exactly_the_jobs_after_the_cursor(storage: Storage) -> None:
    first = await push(storage, *[new(state=State.FINISHED) for _ in range(5)])
    cursor = first[-1]
    later = await push(storage, *[new(state=State.FINISHED) for _ in range(3)])
    after = await storage.stop_position(cursor, [State.FINISHED])
    assert await keys(storage, after_position=after) == [str(k) for k in later[::-1]]


async def test_stop_still_works_after_the_cursor_job_moved_on_or_was_removed(
    storage: Storage,
) -> None:
    [a, b] = await push(storage, new(), new())
    await move(storage, a, State.RUNNING)
    await move(storage, a, State.FINISHED)
    await move(storage, b, State.FINISHED)
    finished_at = await storage.stop_position(a, [State.FINISHED])
    await move(storage, a, State.DELETED)
    assert await storage.stop_position(a, [State.FINISHED]) == finished_at
    assert await storage.remove_job(a)
    assert await storage.stop_position(a, [State.FINISHED]) == finished_at
    assert await keys(storage, after_position=finished_at) == [str(b)]
    assert await storage.stop_position(JobKey(P, 9, 9), [State.FINISHED]) is None
    [c] = await push(storage, new())
    assert await storage.stop_position(c, [State.FINISHED]) is None


async def test_update_follows_the_transition_rules(storage: Storage) -> None:
    [key] = await push(storage, new())
    await move(storage, key, State.FINISHED, close_reason="finished")
    meta = await storage.get_job_meta(key)
    assert meta is not None and meta["close_reason"] == "finished"
    assert meta["completed_by"] == "tester"
    with pytest.raises(errors.Conflict):
        await move(storage, key, State.RUNNING)
    with pytest.raises(errors.Conflict):
        await move(storage, key, State.PENDING)
    assert (await storage.get_job_meta(key)) == meta


async def test_update_to_the_same_state_keeps_time_and_place(storage: Storage) -> None:
    [a, _] = await push(storage, new(state=State.FINISHED), new(state=State.FINISHED))
    before = await storage.list_jobs(P, ListQuery())
    done = await storage.update(P, [JobUpdate(a, State.FINISHED, {"note": 1})], "t")
    assert [(str(u.key), u.prevstate) for u in done] == [(str(a), State.FINISHED)]
    after = await storage.list_jobs(P, ListQuery())
    assert [(r.key, r.position) for r in after] == [(r.key, r.position) for r in before]
    meta = await storage.get_job_meta(a)
    assert meta is not None and meta["note"] == 1


async def test_rejected_update_changes_nothing(storage: Storage) -> None:
    [a, b] = await push(storage, new(), new(state=State.FINISHED))
    with pytest.raises(errors.Conflict):
        await storage.update(
            P, [JobUpdate(a, State.RUNNING, {}), JobUpdate(b, State.PENDING, {})], "t"
        )
    assert await storage.state_counts(P) == {State.PENDING: 1, State.FINISHED: 1}


async def test_claims_and_moves_merge_their_fields_over_the_jobs_own(storage: Storage) -> None:
    """A claim's parameters and an update's fields overwrite the job's fields of the same
    name in place and add the others after them (PostgreSQL appends them to the stored
    text in one statement: the same metadata must come out, in the same order), and
    `tags` moves the job between the tag lists."""
    [key] = await push(storage, new(tags=["a"], x=1, _shub_worker="old", z=0))
    pushed = await storage.get_job_meta(key)
    assert pushed is not None
    model = {k: v for k, v in pushed.items() if k not in jobs.DERIVED_FIELDS}
    params = {"tags": ["b"], "x": 2, "worker": "w1", "y": 9}
    claimed = await storage.start_job(P, StartRequest(params), "t1")
    assert claimed is not None and claimed[0] == key
    meta = await storage.get_job_meta(key)
    assert meta is not None and claimed[1] == meta
    assert meta["tags"] == ["b"] and meta["x"] == 2 and meta["y"] == 9
    assert meta["_shub_worker"] == "w1" and meta["started_by"] == "t1" and meta["z"] == 0
    assert await keys(storage, states=(State.RUNNING,), has_tags=("b",)) == [str(key)]
    assert await keys(storage, states=(State.RUNNING,), has_tags=("a",)) == []
    await move(storage, key, State.FINISHED, x=4, tags=["c"], close_reason="finished")
    await move(storage, key, State.FINISHED, z=5)
    meta = await storage.get_job_meta(key)
    assert meta is not None
    for fields in ({**params, "_shub_worker": "w1", "started_by": "t1"},
                   {"x": 4, "tags": ["c"], "close_reason": "finished", "completed_by": "tester"},
                   {"z": 5}):
        model.update(fields)
    assert [(k, v) for k, v in meta.items() if k not in jobs.DERIVED_FIELDS] == list(
        model.items())
    assert await keys(storage, states=(State.FINISHED,), has_tags=("c",)) == [str(key)]
    assert await keys(storage, states=(State.FINISHED,), has_tags=("b",)) == []
    assert await storage.state_counts(P) == {State.FINISHED: 1, State.PENDING: 0,
                                             State.RUNNING: 0}


async def test_a_refused_move_fails_alone_among_moves_sent_together(storage: Storage) -> None:
    """Updates that arrive together share a transaction (group commit): the one a rule
    refuses answers Conflict and writes nothing, the others are done."""
    created = await push(storage, *[new() for _ in range(6)], new(state=State.FINISHED))
    done = created[-1]
    outcomes = await asyncio.gather(
        *[storage.update(P, [JobUpdate(k, State.RUNNING, {"n": i})], "t")
          for i, k in enumerate(created[:3])],
        storage.update(P, [JobUpdate(done, State.RUNNING, {"n": 9})], "t"),
        *[storage.update(P, [JobUpdate(k, State.FINISHED, {})], "t") for k in created[3:6]],
        return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["list"] * 3 + ["Conflict"] + ["list"] * 3
    assert [[(str(u.key), u.prevstate) for u in o] for o in outcomes[:3]] == [
        [(str(k), State.PENDING)] for k in created[:3]]
    meta = await storage.get_job_meta(done)
    assert meta is not None and "n" not in meta and meta["state"] == "finished"
    assert await storage.state_counts(P) == {State.PENDING: 0, State.RUNNING: 3,
                                             State.FINISHED: 4}
    assert await storage.update(P, [JobUpdate(JobKey(P, 1, 99), State.FINISHED, {})], "t") == []
    # an update names a project: it exists from then on, job or not (as a push makes it)
    assert await storage.update(77, [JobUpdate(JobKey(77, 1, 1), State.FINISHED, {})], "t") == []
    assert await storage.projects() == [P, 77]


async def test_spider_key_update_goes_queue_by_queue_oldest_first(storage: Storage) -> None:
    [a, b, c, d] = await push(storage, new(), new(), new(), new(state=State.FINISHED))
    await move(storage, b, State.RUNNING)
    done = await storage.update(P, [JobUpdate(SpiderKey(P, 1), State.FINISHED, {})], "t")
    assert [(str(u.key), u.prevstate.label) for u in done] == [
        (str(a), "pending"), (str(c), "pending"), (str(b), "running"), (str(d), "finished"),
    ]
    assert await storage.state_counts(P) == {
        State.PENDING: 0, State.RUNNING: 0, State.FINISHED: 4,
    }
    skipped = await storage.update(P, [JobUpdate(SpiderKey(P, 1), State.RUNNING, {})], "t")
    assert skipped == []


async def test_cancel_finishes_pending_and_flags_running(storage: Storage) -> None:
    [a, b, c] = await push(storage, new(), new(), new(state=State.FINISHED))
    await move(storage, b, State.RUNNING)
    assert await storage.cancel(P, [a, b, c, JobKey(P, 7, 7)], None, "canceller") == Cancelled(
        count=2, finished=1)
    meta_a, meta_b = await storage.get_job_meta(a), await storage.get_job_meta(b)
    assert meta_a is not None and meta_b is not None
    assert meta_a["state"] == "finished" and meta_a["close_reason"] == "cancelled"
    assert meta_b["state"] == "running" and "cancel_requested_time" in meta_b
    assert await storage.cancel(P, [a], None, "canceller") == Cancelled(count=0, finished=0)


async def test_cancel_of_one_job_by_its_key(storage: Storage) -> None:
    """One key: PostgreSQL cancels a pending job in one statement, the others as usual."""
    [a, b, c] = await push(storage, new(), new(), new(state=State.FINISHED))
    await move(storage, b, State.RUNNING)
    assert await storage.set_job_meta(b, {"cancelled_by": "earlier"})
    for key in (c, JobKey(P, 7, 7), JobKey(P, a.spider, 99)):
        assert await storage.cancel(P, [key], None, "x") == Cancelled(count=0, finished=0)
    assert await storage.cancel(P, [b], None, "x") == Cancelled(count=1, finished=0)
    assert await storage.cancel(P, [a], None, "x") == Cancelled(count=1, finished=1)
    meta_a, meta_b = await storage.get_job_meta(a), await storage.get_job_meta(b)
    assert meta_a is not None and meta_b is not None
    assert {k: meta_a[k] for k in ("state", "close_reason", "cancelled_by", "completed_by")} \
        == {"state": "finished", "close_reason": "cancelled", "cancelled_by": "x",
            "completed_by": "x"}
    assert meta_b["state"] == "running" and meta_b["cancelled_by"] == "earlier"
    assert "cancel_requested_time" in meta_b
    assert await storage.state_counts(P) == {
        State.PENDING: 0, State.RUNNING: 1, State.FINISHED: 2}
    assert await keys(storage, states=(State.FINISHED,)) == [str(a), str(c)]


async def test_cancel_with_a_limit_takes_the_oldest_pending(storage: Storage) -> None:
    created = await push(storage, *[new() for _ in range(5)])
    assert await storage.cancel(P, None, 2, "admin") == Cancelled(count=2, finished=2)
    assert await keys(storage, states=(State.PENDING,)) == [str(k) for k in created[:1:-1]]


async def test_filters_spider_tags_time_count_and_start(storage: Storage) -> None:
    created = await push(
        storage,
        new("a", state=State.FINISHED, tags=["x"]),
        new("b", state=State.FINISHED, tags=["x", "y"]),
        new("a", state=State.FINISHED),
        new("b", state=State.FINISHED, tags=["y"]),
    )
    a, b = [await storage.spider_id(P, s, create=False) for s in "ab"]
    assert a is not None and b is not None
    names = [str(k) for k in created]
    assert await keys(storage, spiders=(a,)) == [names[2], names[0]]
    assert await keys(storage, has_tags=("x",)) == [names[1], names[0]]
    assert await keys(storage, lacks_tags=("x",)) == [names[3], names[2]]
    assert await keys(storage, has_tags=("x", "y"), lacks_tags=("x",)) == [names[3]]
    assert await keys(storage, spiders=(a, b), count=2, start=1) == [names[2], names[1]]
    assert await keys(storage, spiders=()) == []
    listed = await storage.list_jobs(P, ListQuery())
    ts = jobs.ts_of(listed[-1].position)
    assert len(await keys(storage, startts=ts)) == 4
    assert await keys(storage, endts=ts) == []
    query = ListQuery(spiders=(b,), has_tags=("y",))
    assert await storage.count_jobs(P, query) == 2
    assert await storage.count_jobs(P, ListQuery(spiders=(a,))) == 2


async def test_several_states_merge_by_position(storage: Storage) -> None:
    [a, b, c] = await push(storage, new(), new(), new())
    await move(storage, a, State.RUNNING)
    await move(storage, c, State.FINISHED)
    states = (State.PENDING, State.RUNNING, State.FINISHED)
    assert await keys(storage, states=states) == [str(c), str(a), str(b)]
    assert await keys(storage, states=states, count=1, start=1) == [str(a)]
    assert await storage.count_jobs(P, ListQuery(states=states)) == 3


async def test_tags_changed_by_metadata_are_filtered_on(storage: Storage) -> None:
    [key] = await push(storage, new(state=State.FINISHED, tags=["old"]))
    assert await storage.set_job_meta(key, {"tags": ["new"]})
    assert await keys(storage, has_tags=("new",)) == [str(key)]
    assert await keys(storage, has_tags=("old",)) == []
    assert await storage.delete_job_meta_field(key, "tags")
    assert await keys(storage, has_tags=("new",)) == []


async def test_job_metadata_set_delete_and_remove(storage: Storage) -> None:
    [key] = await push(storage, new())
    assert await storage.set_job_meta(key, {"a": 1, "state": "finished", "project": 9})
    meta = await storage.get_job_meta(key)
    assert meta is not None and meta["a"] == 1
    assert meta["state"] == "pending" and meta["project"] == P
    assert await storage.delete_job_meta_field(key, "a")
    meta = await storage.get_job_meta(key)
    assert meta is not None and "a" not in meta
    assert await storage.remove_job(key)
    assert await storage.get_job_meta(key) is None
    assert not await storage.remove_job(key)
    assert not await storage.set_job_meta(key, {"a": 2})
    assert await storage.state_counts(P) == {State.PENDING: 0}
    assert await keys(storage, states=(State.PENDING,)) == []


async def test_last_jobs_is_the_newest_of_each_spider(storage: Storage) -> None:
    await push(storage, new("a"), new("b"), new("a"), new("b"))
    await move(storage, JobKey(P, 2, 2), State.DELETED)
    last = await storage.last_jobs(P, None)
    assert [str(r.key) for r in last] == ["53/1/2", "53/2/1"]
    assert [str(r.key) for r in await storage.last_jobs(P, 1)] == ["53/1/2"]


async def test_botgroup_caps_running_jobs(storage: Storage) -> None:
    await push(storage, new(), new(), new())
    await push(storage, new(), project=54)
    await storage.update_settings(P, {"botgroups": ["g1"]})
    await storage.update_settings(54, {"botgroups": ["g1"]})
    assert await storage.start_job(P, StartRequest({}, "other"), "w") is None
    await storage.set_max_running("g1", 2)
    assert await storage.start_job(P, StartRequest({}, "g1"), "w") is not None
    assert await storage.start_job(54, StartRequest({}, None), "w") is not None
    assert not await storage.has_capacity(P)
    assert await storage.start_job(P, StartRequest({}, "g1"), "w") is None
    await storage.set_max_running("g1", None)
    assert await storage.has_capacity(P)
    assert await storage.start_job(P, StartRequest({}, None), "w") is not None
    await storage.set_max_running("g1", 1)
    await storage.delete_botgroup("g1")
    assert await storage.start_job(P, StartRequest({}, None), "w") is not None


async def test_settings_merge_and_remove(storage: Storage) -> None:
    assert await storage.get_settings(P) == {}
    await storage.update_settings(P, {"a": 1, "b": [1]})
    await storage.update_settings(P, {"a": 2}, remove=["b"])
    assert await storage.get_settings(P) == {"a": 2}
    assert P in await storage.projects()


async def test_api_keys_and_secrets(storage: Storage) -> None:
    created = await storage.create_api_key("hash1", "alice", P)
    assert await storage.find_api_key("hash1") == created
    assert await storage.find_api_key("nope") is None
    assert await storage.revoke_api_key(created.key_id)
    assert not await storage.revoke_api_key(created.key_id)
    assert await storage.find_api_key("hash1") is None
    [listed] = await storage.list_api_keys()
    assert listed.name == "alice" and listed.revoked_ms is not None
    assert await storage.get_or_create_secret("s", "v1") == "v1"
    assert await storage.get_or_create_secret("s", "v2") == "v1"


async def test_state_counts_per_spider(storage: Storage) -> None:
    await push(storage, new("a"), new("a", state=State.FINISHED), new("b"))
    assert await storage.state_counts(P, 1) == {State.PENDING: 1, State.FINISHED: 1}
    assert await storage.state_counts(P, 2) == {State.PENDING: 1}


async def test_concurrent_claims_share_batches_but_never_a_job(storage: Storage) -> None:
    import asyncio

    await push(storage, *[new() for _ in range(30)])
    claimed = await asyncio.gather(
        *[storage.start_job(P, StartRequest({}), "w") for _ in range(40)]
    )
    keys_ = [c[0] for c in claimed if c is not None]
    assert len(keys_) == len(set(keys_)) == 30
    assert await storage.state_counts(P) == {State.PENDING: 0, State.RUNNING: 30}


async def test_max_running_holds_within_one_batch(storage: Storage) -> None:
    import asyncio

    await push(storage, *[new() for _ in range(10)])
    await storage.update_settings(P, {"botgroups": ["g"]})
    await storage.set_max_running("g", 3)
    claimed = await asyncio.gather(
        *[storage.start_job(P, StartRequest({}, "g"), "w") for _ in range(10)]
    )
    assert sum(c is not None for c in claimed) == 3


async def test_concurrent_writes_keep_counts_and_queues_consistent(storage: Storage) -> None:
    import asyncio

    created = await push(storage, *[new() for _ in range(20)])
    first = await storage.start_job(P, StartRequest({}), "w")
    assert first is not None
    calls: list[Any] = [
        storage.update(P, [JobUpdate(first[0], State.FINISHED, {"n": 1})], "w"),
        *[storage.start_job(P, StartRequest({}), "w") for _ in range(5)],
        storage.push(P, [new(), new()], "t"),
        storage.cancel(P, created[10:13], None, "t"),
        storage.update(P, [JobUpdate(created[15], State.DELETED, {})], "t"),
        storage.set_job_meta(created[16], {"note": "x"}),
    ]
    await asyncio.gather(*calls)
    counts = await storage.state_counts(P)
    for state in (State.PENDING, State.RUNNING, State.FINISHED):
        listed = await storage.list_jobs(P, ListQuery(states=(state,), count=None))
        assert len(listed) == counts.get(state, 0), state
    assert counts[State.FINISHED] == 4 and counts[State.RUNNING] == 5
    assert counts[State.PENDING] == 22 - 4 - 5 - 1 and counts[State.DELETED] == 1


async def test_spider_filters_read_alike_as_branches_and_as_one_set(storage: Storage) -> None:
    """A spider filter is read as one branch per queue and spider, or, beyond
    `filters.MAX_BRANCHES`, as one spider set per queue: both give the rows of a plain
    scan, newest first, with the same window (also one that overflows 64 bits)."""
    n = filters.MAX_BRANCHES + 6
    lines = [new(f"s{i}", state=State(i % 3)) for i in range(n)]
    lines += [new(f"s{i}", state=State.FINISHED) for i in range(0, n, 4)]
    created = await push(storage, *lines)
    state_of = {str(k): line.state for k, line in zip(created, lines, strict=True)}
    positions = {str(r.key): r.position for r in await storage.list_jobs(P, ListQuery(
        states=jobs.LISTABLE, count=None))}
    for states, spiders, as_set in [((State.PENDING,), n - 1, True), (jobs.LISTABLE, 3, False),
                                    (jobs.LISTABLE, n - 1, True), ((State.FINISHED,), 20, False)]:
        ids = tuple(range(1, spiders + 1))
        assert (len(states) * len(ids) > filters.MAX_BRANCHES) is as_set
        wanted = sorted((str(k) for k in created
                         if k.spider in ids and state_of[str(k)] in states),
                        key=lambda k: -positions[k])
        assert wanted
        for count, start in [(None, 0), (5, 3), (1000, 2**63 - 1), (2**63 - 1, 1)]:
            window = wanted[start:] if count is None else wanted[start:start + count]
            assert await keys(storage, states=states, spiders=ids, count=count,
                              start=start) == window
        for query in (ListQuery(states=states, spiders=ids, count=None),
                      ListQuery(states=states, spiders=ids, count=None, startts=1)):
            assert await storage.count_jobs(P, query) == len(wanted)


async def test_units_in_use_reads_units_alike_whatever_a_client_stored(
    storage: Storage
) -> None:
    """Running units summed, the most units of a pending job; `units` that is not an
    integer from 1 to UNITS_CAP (a client may overwrite it with anything) counts 1."""
    assert await storage.units_in_use(P) == (0, None)
    running = await push(storage, new("a", State.RUNNING), new("a", State.RUNNING),
                         new("a", State.RUNNING))
    pending = await push(storage, new("b"), new("b"))
    await push(storage, new("c", State.FINISHED))
    odd: list[Any] = [2.0, "5", None, [2], {"n": 2}, True, -2, 0, UNITS_CAP + 1]
    for value in odd:
        await storage.set_job_meta(running[0], {"units": value})
        assert await storage.units_in_use(P) == (3, 1), value
    await storage.set_job_meta(running[1], {"units": 7})
    await storage.set_job_meta(running[2], {"units": UNITS_CAP})
    await storage.set_job_meta(pending[1], {"units": 4})
    assert await storage.units_in_use(P) == (1 + 7 + UNITS_CAP, 4)
    assert await storage.units_in_use(P + 1) == (0, None)
