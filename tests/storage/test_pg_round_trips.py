"""PostgreSQL: startjob, the finish of a job (an update naming one job with a state) and
the cancel of one pending job take one round trip each, BEGIN and COMMIT included (issue
9: each round trip is a wake-up of the node's process while the project's queue waits).
Counted on the wire: libpq's trace of the storage's only pooled connection (see
`round_trips`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from psycopg import pq

from jobq.domain.jobs import JobKey, State
from jobq.domain.records import Cancelled, JobUpdate, NewJob, StartRequest
from jobq.storage.postgres import PostgresStorage

pytestmark = pytest.mark.anyio

P = 53


def round_trips(trace: Path) -> int:
    """Each Sync the client sends, and each Flush but one right after a Sync (psycopg's
    pipeline sends both at its end), asks the server for answers the client then waits
    for."""
    sent = [fields[2] for fields in (line.split("\t") for line in trace.read_text().splitlines())
            if len(fields) > 2 and fields[0] == "F"]
    return sum(1 for i, message in enumerate(sent)
               if message == "Sync" or (message == "Flush" and (i == 0 or sent[i - 1] != "Sync")))


@asynccontextmanager
async def traced(storage: PostgresStorage, trace: Path) -> AsyncIterator[None]:
    """Inside, what the storage's only pooled connection sends is written to `trace`."""
    with open(trace, "w") as out:
        assert storage._pool is not None
        async with storage._pool.connection() as conn:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        yield
        async with storage._pool.connection() as conn:
            conn.pgconn.untrace()


@pytest.fixture
async def three_pending(pg_url: str) -> AsyncIterator[PostgresStorage]:
    """A storage with one pooled connection (the one traced) and three pending jobs."""
    storage = PostgresStorage(pg_url, pool_size=1)
    await storage.open()
    try:
        await storage.push(P, [NewJob("s", State.PENDING, 2, None, None, {})] * 3, "t")
        yield storage
    finally:
        await storage.close()


async def test_startjob_and_finish_take_one_round_trip_each(three_pending: PostgresStorage,
                                                           tmp_path: Path) -> None:
    storage, trace = three_pending, tmp_path / "trace"
    async with traced(storage, trace):
        counts = []
        for _ in range(3):
            before = round_trips(trace)
            claimed = await storage.start_job(P, StartRequest({}), "w")
            assert claimed is not None
            started = round_trips(trace)
            done = await storage.update(P, [JobUpdate(claimed[0], State.FINISHED, {})], "w")
            assert [u.prevstate for u in done] == [State.RUNNING]
            counts.append((started - before, round_trips(trace) - started))
    assert counts == [(1, 1)] * 3
    assert await storage.start_job(P, StartRequest({}), "w") is None
    assert await storage.state_counts(P) == {State.PENDING: 0, State.RUNNING: 0,
                                             State.FINISHED: 3}


async def test_cancel_of_one_pending_job_takes_one_round_trip(three_pending: PostgresStorage,
                                                              tmp_path: Path) -> None:
    storage, trace = three_pending, tmp_path / "trace"
    async with traced(storage, trace):
        counts = []
        for job in (1, 2, 3):
            before = round_trips(trace)
            done = await storage.cancel(P, [JobKey(P, 1, job)], None, "a")
            assert done == Cancelled(count=1, finished=1)
            counts.append(round_trips(trace) - before)
    assert counts == [1, 1, 1]
    counted = await storage.state_counts(P)
    assert (counted[State.PENDING], counted[State.FINISHED]) == (0, 3)
