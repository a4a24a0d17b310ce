"""PostgreSQL: what the writes of a batch do together (issue 9). Pushes that wait for the
same transaction are numbered and inserted together, each answered as if pushed after
the one before it; a push the database refuses fails alone. A claim with no other
operation in its batch is one statement in its own transaction, and falls back to
locking the botgroups first when its project has a capped one, so that `max_running`
holds across nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobq import errors
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobUpdate, ListQuery, NewJob, StartRequest
from jobq.storage.postgres import PostgresStorage
from tests.storage.test_pg_round_trips import round_trips, traced

pytestmark = pytest.mark.anyio

P = 54


def job(unique: str | None = None, priority: int = 2) -> NewJob:
    return NewJob("s", State.PENDING, priority, unique, None, {})


async def test_pushes_of_one_batch_are_numbered_and_inserted_together(
    pg_url: str, tmp_path: Path
) -> None:
    storage = PostgresStorage(pg_url, pool_size=1)
    await storage.open()
    try:
        first = await storage.push(P, [job()], "t")  # the spider exists and is known
        trace = tmp_path / "trace"
        async with traced(storage, trace):
            # the first push starts a batch alone; the other 20 wait for it, then go together
            pushed = await asyncio.gather(*[
                storage.push(P, [job("u" if i in (5, 9) else None)], "t") for i in range(21)])
        # two batches of a few round trips each (one by one: 2 a push)
        assert round_trips(trace) <= 10
        assert first[0].key == JobKey(P, 1, 1)
        keys = [p[0].key for p in pushed]
        # numbered as pushed one after the other; the second "u" is the first's duplicate
        assert keys == [JobKey(P, 1, n) for n in range(2, 11)] + [None] + [
            JobKey(P, 1, n) for n in range(11, 22)]
        assert pushed[9][0].duplicate_of == JobKey(P, 1, 7)
        listed = await storage.list_jobs(P, ListQuery(states=(State.PENDING,), count=None))
        assert [(r.key, r.position) for r in listed] == sorted(
            ((r.key, r.position) for r in listed), key=lambda kp: kp[1], reverse=True)
        assert sorted(r.key.job for r in listed) == list(range(1, 22))
    finally:
        await storage.close()


async def test_a_push_the_database_refuses_fails_alone(pg_url: str) -> None:
    storage = PostgresStorage(pg_url, pool_size=1)
    await storage.open()
    try:
        await storage.push(P, [job()], "t")
        # a priority beyond the column's range (the HTTP layer refuses it before)
        pushed = await asyncio.gather(
            *[storage.push(P, [job(priority=40000 if i == 3 else 2)], "t") for i in range(8)],
            return_exceptions=True)
        assert isinstance(pushed[3], errors.StorageError)
        good = [p for i, p in enumerate(pushed) if i != 3]
        assert all(isinstance(p, list) for p in good)
        assert sorted(p[0].key.job for p in good) == list(range(2, 9))  # type: ignore[index,union-attr]
        assert await storage.state_counts(P) == {State.PENDING: 8}
    finally:
        await storage.close()


async def test_claims_alone_on_two_nodes_keep_max_running(pg_url: str) -> None:
    nodes = [PostgresStorage(pg_url, pool_size=2) for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        await nodes[0].push(P, [job() for _ in range(60)], "t")
        await nodes[0].update_settings(P, {"botgroups": ["g"]})
        await nodes[0].set_max_running("g", 1)
        for _ in range(25):
            # one claim a node at once: each is its batch's only operation
            claimed = await asyncio.gather(
                *[node.start_job(P, StartRequest({}, "g"), "w") for node in nodes])
            won = [c for c in claimed if c is not None]
            assert len(won) == 1, claimed
            await nodes[1].update(P, [JobUpdate(won[0][0], State.FINISHED, {})], "w")
        assert await nodes[0].state_counts(P) == {
            State.PENDING: 35, State.RUNNING: 0, State.FINISHED: 25}
    finally:
        for node in nodes:
            await node.close()
