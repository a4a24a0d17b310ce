"""What a requeue costs now that it removes the lost run's records: the reaper's requeue of
a lost job with N items (default 1,000,000, about 1,000 chunks) against the requeue of a
lost job with none, in one run, on each backend. The requeue is one transaction (on SQLite
it holds the writer, so every write of the server waits for it): its time is the figure.

    python -m bench.requeue [--backend sqlite|postgres|both] [--items N] [--pg URL]
                            [--json FILE]

In process: the real storage, `Workers` and a `ManualClock` (the lease expires when the
clock is moved); records are stored through the chunk store as the HTTP writes store them
(batches of 1,000 small items).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench import pg
from jobq.core.credentials import JobTokens, Principal
from jobq.core.queue import JobQueue
from jobq.core.workers import Wakeups, Workers
from jobq.domain import leases
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey
from jobq.domain.records_data import Kind, parse_batch
from jobq.storage import open_storage
from jobq.storage.base import Storage
from jobq.storage.chunks import Prepared, StreamRef

WORK = Path(__file__).parent / ".work" / "requeue"
ADMIN = Principal(name="admin", is_admin=True)
P = 1
BATCH = 1000


def _item(n: int) -> bytes:
    """A small item that compresses about as real ones do (a random part: zstd would make
    1,000 equal items a chunk of a few bytes, and removing those would cost nothing)."""
    return json.dumps({"url": f"https://shop.example.com/product/{n}", "title": "steel kettle",
                       "price": 24.5, "sku": os.urandom(12).hex(), "in_stock": True,
                       "description": os.urandom(24).hex()}).encode()

TIMEOUTS = leases.Timeouts.of_seconds(10, 30)


async def _lost_job(storage: Storage, workers: Workers, items: int, clock: ManualClock
                    ) -> JobKey:
    """A job claimed by a worker, with `items` items stored."""
    worker = str((await workers.register(ADMIN, {"name": "w", "slots": 1}))["id"])
    await workers.queue.push(ADMIN, P, [{"spider": "s"}])
    job = await workers.start(ADMIN, P, {"worker_id": worker}, 0)
    assert job is not None
    key = JobKey.parse(job["key"])
    batches = [Prepared.of(parse_batch(Kind.ITEMS, b"\n".join(map(_item, range(BATCH))), None))
               for _ in range(8)]
    store = storage.chunk_store()
    for n, first in enumerate(range(0, items, BATCH)):
        await store.append(StreamRef(key, Kind.ITEMS), first, batches[n % len(batches)], False,
                           None, clock.now_ms())
    return key


async def _stored(storage: Storage, key: JobKey) -> dict[str, int]:
    """The chunks of the job's items and their stored (compressed) bytes."""
    chunks = await storage.chunk_store().chunks(StreamRef(key, Kind.ITEMS), 0, 1 << 30)
    return {"chunks": len(chunks), "stored_mb": sum(len(c.data) for c in chunks) >> 20}


async def _measure(url: str, items: int) -> dict[str, Any]:
    clock = ManualClock(now_ms=time.time_ns() // 1_000_000)
    storage = open_storage(url, clock=clock)
    await storage.open()
    try:
        await storage.update_settings(P, {"requeue_lost": True})
        queue = JobQueue(storage, JobTokens("a-bench-signing-secret-of-32-bytes!"), 1000, clock)
        workers = Workers(storage, queue, clock, TIMEOUTS, Wakeups())
        await storage.reaper_tick(clock.now_ms(), 1, TIMEOUTS)
        warm = await _lost_job(storage, workers, 0, clock)  # first statements: caches
        big = await _lost_job(storage, workers, items, clock)
        empty = await _lost_job(storage, workers, 0, clock)
        sizes = await _stored(storage, big)
        clock.advance(11)
        now = clock.now_ms()
        policy = leases.policy_of(await storage.get_settings(P))
        due = {lease.key: lease for lease in await storage.due_leases(now, 10)}
        seconds = {}
        for name, key in (("warm", warm), ("big", big), ("empty", empty)):
            started = time.perf_counter()
            outcome = await storage.expire_lease(due[key], policy, now)
            seconds[name] = time.perf_counter() - started
            assert outcome == "requeued", outcome
        head = await storage.chunk_store().head(StreamRef(big, Kind.ITEMS))
        assert head is None, "the lost run's items went with the requeue"
        return {"items": items, **sizes, "requeue_empty_ms": round(seconds["empty"] * 1000, 2),
                "requeue_big_ms": round(seconds["big"] * 1000, 2),
                "ratio": round(seconds["big"] / seconds["empty"], 1)}
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.requeue")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get(
        "JOBQ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {}
    for backend in ("sqlite", "postgres"):
        if args.backend not in (backend, "both"):
            continue
        if backend == "sqlite":
            shutil.rmtree(WORK, ignore_errors=True)
            WORK.mkdir(parents=True)
            url = f"sqlite:///{WORK / 'jobq.sqlite3'}"
        else:
            why = pg.available(args.pg)
            if why is not None:
                print(f"postgres: skipped ({why})")
                continue
            url = pg.recreate(args.pg, "jobq_bench_requeue")
        try:
            results[backend] = asyncio.run(_measure(url, args.items))
        finally:
            if backend == "postgres":
                pg.drop(args.pg, "jobq_bench_requeue")
            else:
                shutil.rmtree(WORK, ignore_errors=True)
        print(backend, results[backend], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
