"""Leases on both backends, in process: the real storage, the real `Workers` service and
`Reaper`, and a `ManualClock` that the tests move (no sleeps). Each test states one
rule of issue 10."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobq import errors
from jobq.core.credentials import JobTokens, Principal
from jobq.core.jobdata import JobData
from jobq.core.queue import JobQueue
from jobq.core.workers import Reaper, Wakeups, Workers
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey, State
from jobq.domain.leases import Timeouts
from jobq.domain.records import ListQuery
from jobq.domain.records_data import Kind
from jobq.domain.records_query import ReadQuery
from jobq.storage.base import Storage
from jobq.storage.chunks import StreamRef

pytestmark = pytest.mark.anyio

ADMIN = Principal(name="admin", is_admin=True)
P = 7
#: worker timeout 10 s, cancel timeout 30 s
TIMEOUTS = Timeouts.of_seconds(10, 30)


class Rig:
    """The services over one storage, on one manual clock."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # the storage stamps cancels with the real time: start the manual clock there
        self.clock = ManualClock(now_ms=time.time_ns() // 1_000_000)
        wakeups = Wakeups()
        self.queue = JobQueue(storage, JobTokens("a-test-signing-secret-of-32-bytes!"), 1000)
        self.workers = Workers(storage, self.queue, self.clock, TIMEOUTS, wakeups)
        self.reaper = Reaper(storage, self.clock, TIMEOUTS, wakeups)

    async def elapse(self, seconds: float) -> None:
        """Let time pass with the reaper ticking every second, as it does in a server
        (a longer silence is an outage, which earns every lease a grace)."""
        while seconds > 0:
            step = min(seconds, 1.0)
            self.clock.advance(step)
            seconds -= step
            await self.reaper.tick()

    async def register(self, name: str = "w") -> str:
        answer = await self.workers.register(ADMIN, {"name": name, "slots": 4})
        return str(answer["id"])

    async def push(self, n: int = 1, **fields: Any) -> list[str]:
        answers = await self.queue.push(ADMIN, P, [{"spider": "s", **fields}] * n)
        return [a["key"] for a in answers]

    async def claim(self, worker_id: str) -> str:
        job = await self.workers.start(ADMIN, P, {"worker_id": worker_id}, 0)
        assert job is not None
        return str(job["key"])

    async def beat(self, worker_id: str, *keys: str) -> dict[str, dict[str, Any]]:
        answer = await self.workers.heartbeat(ADMIN, worker_id, {"jobs": list(keys)})
        return {a["key"]: a for a in answer["jobs"]}

    async def meta(self, key: str) -> dict[str, Any]:
        found = await self.storage.get_job_meta(JobKey.parse(key))
        assert found is not None
        return found

    async def position(self, key: str) -> int:
        query = ListQuery(states=tuple(State)[:3], keys=(JobKey.parse(key),), count=None)
        (record,) = await self.storage.list_jobs(P, query)
        return record.position


@pytest.fixture
async def rig(storage: Storage) -> AsyncIterator[Rig]:
    made = Rig(storage)
    await made.reaper.tick()  # a fresh database has never been reaped: the first tick is grace
    yield made


async def test_lease_of_a_silent_worker_expires_once_with_lost(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    assert await rig.claim(worker) == key
    await rig.elapse(9)
    assert (await rig.meta(key))["state"] == "running", "within the worker timeout"
    running_position = await rig.position(key)
    await rig.elapse(1.5)
    meta = await rig.meta(key)
    assert (meta["state"], meta["close_reason"], meta["completed_by"]) == (
        "finished", "lost", "jobq")
    assert await rig.position(key) > running_position, "a normal state change, with a position"
    await rig.reaper.tick()
    assert rig.reaper.outcomes == {"lost": 1}
    (listed,) = await rig.workers.list_workers(ADMIN)
    assert listed["state"] == "lost" and listed["jobs"] == []


async def test_heartbeat_renews_its_jobs(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    await rig.claim(worker)
    for _ in range(5):
        await rig.elapse(8)
        assert (await rig.beat(worker, key))[key]["action"] == "continue"
        await rig.reaper.tick()
    assert (await rig.meta(key))["state"] == "running"
    assert rig.reaper.outcomes == {}


async def test_lost_job_is_requeued_up_to_max_retries(rig: Rig) -> None:
    await rig.storage.update_settings(P, {"requeue_lost": True, "max_retries": 2})
    (key,) = await rig.push()
    worker = await rig.register()
    for attempt in (1, 2):
        assert await rig.claim(worker) == key
        await rig.elapse(11)
        meta = await rig.meta(key)
        assert (meta["state"], meta["retries"]) == ("pending", attempt)
        await rig.beat(worker)  # the worker comes back before claiming again
    await rig.claim(worker)
    await rig.elapse(11)
    meta = await rig.meta(key)
    assert (meta["state"], meta["close_reason"], meta["retries"]) == ("finished", "lost", 2)
    assert rig.reaper.outcomes == {"requeued": 2, "lost": 1}


async def test_a_requeued_job_starts_afresh_from_record_0(rig: Rig) -> None:
    """The lost run's items, logs and requests go with the requeue: the next run's
    records 0.. are stored (not skipped as retries of the lost run's) and read back
    alone."""
    await rig.storage.update_settings(P, {"requeue_lost": True, "job_logs_max": 3})
    (key,) = await rig.push()
    job = JobKey.parse(key)
    data = JobData(rig.storage, rig.storage.chunk_store(), 1 << 20, rig.clock)

    async def write(run: str, n: int) -> list[int]:
        stored = []
        for kind in Kind:
            body = b"".join(b'{"run": "%s", "n": %d}\n' % (run.encode(), i) for i in range(n))
            try:
                stored.append(await data.write(ADMIN, kind, job, 0, body, None))
            except errors.PayloadTooLarge:  # the logs cap: the lost run hit it
                stored.append(-1)
        return stored

    async def read(kind: Kind) -> list[tuple[int, dict[str, Any]]]:
        found = []
        async for block in data.blocks(StreamRef(job, kind), ReadQuery()):
            found.extend(zip(block.indexes, block.objects(), strict=True))
        return found

    worker = await rig.register()
    await rig.claim(worker)
    assert await write("lost", 5) == [5, -1, 5]
    await rig.storage.set_job_meta(job, {"scrapystats": {"item_scraped_count": 5}})
    assert (await rig.meta(key))["logs_truncated"] is True
    await rig.elapse(11)
    meta = await rig.meta(key)
    assert (meta["state"], meta["retries"]) == ("pending", 1)
    assert "scrapystats" not in meta and "logs_truncated" not in meta, "the lost run's"
    for kind in Kind:
        assert await read(kind) == [], f"the lost run's {kind.value} are gone with the requeue"
        stats = await data.stats(StreamRef(job, kind))
        assert stats["totals"] == {"input_bytes": 0, "input_values": 0}
    await rig.beat(worker)
    assert await rig.claim(worker) == key
    assert await write("next", 2) == [2, 2, 2], "records 0 and 1 of the new run are stored"
    for kind in Kind:
        assert await read(kind) == [(0, {"run": "next", "n": 0}), (1, {"run": "next", "n": 1})]
        stats = await data.stats(StreamRef(job, kind))
        assert stats["totals"]["input_values"] == 2


async def test_cancel_reaches_the_worker_then_times_out(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    await rig.claim(worker)
    assert await rig.queue.cancel(ADMIN, P, [{"key": key}], None) == 1
    answer = (await rig.beat(worker, key))[key]
    assert (answer["action"], answer["reason"], answer["finish"]) == ("stop", "cancelled", True)
    for _ in range(3):  # the worker keeps heartbeating but does not stop the job
        await rig.elapse(9)
        await rig.beat(worker, key)
        await rig.reaper.tick()
    assert (await rig.meta(key))["state"] == "running", "30 s have not passed"
    await rig.elapse(4)
    await rig.beat(worker, key)
    await rig.reaper.tick()
    meta = await rig.meta(key)
    assert (meta["state"], meta["close_reason"]) == ("finished", "cancel_timeout")
    answer = (await rig.beat(worker, key))[key]
    assert (answer["action"], answer["finish"]) == ("stop", False)


async def test_max_runtime_asks_to_stop_then_finishes(rig: Rig) -> None:
    await rig.storage.update_settings(P, {"max_runtime": 20})
    (key,) = await rig.push()
    worker = await rig.register()
    await rig.claim(worker)
    await rig.elapse(8)
    assert (await rig.beat(worker, key))[key]["action"] == "continue"
    await rig.elapse(8)
    assert (await rig.beat(worker, key))[key]["action"] == "continue"
    await rig.elapse(5)  # 21 s: past max_runtime
    answer = (await rig.beat(worker, key))[key]
    assert (answer["action"], answer["reason"]) == ("stop", "cancelled (time limit)")
    assert (await rig.meta(key))["state"] == "running"
    for _ in range(4):
        await rig.elapse(8)
        await rig.beat(worker, key)
        await rig.reaper.tick()
    meta = await rig.meta(key)
    assert (meta["state"], meta["close_reason"]) == ("finished", "cancelled (time limit)")


async def test_a_heartbeat_never_touches_another_workers_job(rig: Rig) -> None:
    keys = await rig.push(2)
    first, second = await rig.register("a"), await rig.register("b")
    await rig.claim(first)
    await rig.claim(second)
    for _ in range(3):
        await rig.elapse(4)
        answer = await rig.beat(first, *keys, "7/1/99")  # foreign and unknown jobs too
        assert answer[keys[0]]["action"] == "continue"
        assert (answer[keys[1]]["action"], answer[keys[1]]["finish"]) == ("stop", False)
        assert answer["7/1/99"]["finish"] is False
    await rig.reaper.tick()
    assert [(await rig.meta(k))["state"] for k in keys] == ["running", "finished"]
    assert (await rig.meta(keys[1]))["close_reason"] == "lost"


async def test_a_worker_back_from_lost_gets_stop_for_its_old_jobs(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    await rig.claim(worker)
    await rig.elapse(11)
    with pytest.raises(errors.Conflict):
        await rig.workers.start(ADMIN, P, {"worker_id": worker}, 0)
    answer = (await rig.beat(worker, key))[key]
    assert (answer["action"], answer["finish"]) == ("stop", False)
    (listed,) = await rig.workers.list_workers(ADMIN)
    assert listed["state"] == "active", "the heartbeat brought it back"


async def test_after_an_outage_every_worker_gets_a_whole_timeout(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    await rig.claim(worker)
    rig.clock.advance(40)  # nobody reaped (the database was out of reach)
    await rig.reaper.tick()
    assert (await rig.meta(key))["state"] == "running"
    await rig.elapse(9)
    assert (await rig.meta(key))["state"] == "running"
    await rig.elapse(1.5)
    assert (await rig.meta(key))["close_reason"] == "lost"


async def test_unknown_and_foreign_workers_are_refused(rig: Rig) -> None:
    (key,) = await rig.push()
    worker = await rig.register()
    with pytest.raises(errors.NotFound):
        await rig.workers.heartbeat(ADMIN, "nope", {"jobs": []})
    with pytest.raises(errors.NotFound):
        await rig.workers.start(ADMIN, P, {"worker_id": "nope"}, 0)
    other = Principal(name="someone", project=P)
    with pytest.raises(errors.Forbidden):
        await rig.workers.heartbeat(other, worker, {"jobs": [key]})
    with pytest.raises(errors.BadRequest):
        await rig.workers.heartbeat(ADMIN, worker, {"jobs": ["7/1"]})
    assert (await rig.meta(key))["state"] == "pending", "a refused request changes nothing"
    await rig.claim(worker)
    with pytest.raises(errors.Conflict):
        await rig.workers.unregister(ADMIN, worker)
    await rig.queue.update(ADMIN, P, [{"key": key, "state": "finished"}])
    await rig.workers.unregister(ADMIN, worker)
    assert await rig.workers.list_workers(ADMIN) == []


async def test_jobs_claimed_without_a_worker_id_never_expire(rig: Rig) -> None:
    (key,) = await rig.push()
    assert (await rig.queue.start(ADMIN, P, {}))["key"] == key
    await rig.queue.cancel(ADMIN, P, [{"key": key}], None)
    await rig.elapse(400)  # past every timeout
    meta = await rig.meta(key)
    assert meta["state"] == "running" and "close_reason" not in meta
