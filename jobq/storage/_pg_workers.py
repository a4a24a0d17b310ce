"""Workers and leases on PostgreSQL (issue 10). Rules from `jobq.domain.leases`; state
changes go through `_pg_tx` inside the project's group-commit transaction, so they take
positions under the project lock like every other write.

Exactly once across nodes: the reaper takes a lease with a conditional DELETE (still the
same lease, still due) inside the project's transaction, so of several nodes reaping the
same lease one deletes it and changes the job; the others find nothing. A heartbeat
renews the worker's own leases with one UPDATE that locks them, so a reaper that wants
one waits and then sees it renewed."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection

from jobq import errors
from jobq.domain import changes, leases
from jobq.domain.jobs import JobKey, State
from jobq.domain.leases import JobAnswer, Lease, LostPolicy, NewLease, Stop, Timeouts, Worker
from jobq.domain.records import JobUpdate, StartRequest
from jobq.storage import _pg_chunks, _pg_tx
from jobq.storage._pg_sql import Q, parse_queries, sql_file

log = logging.getLogger(__name__)

@functools.cache
def _queries() -> dict[str, str]:
    return parse_queries(sql_file("workers.sql"))


class _WorkerQueries:
    def __getattr__(self, name: str) -> str:
        try:
            return _queries()[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in workers.sql") from None


W = _WorkerQueries()


def lease_of(row: Sequence[Any]) -> Lease:
    return Lease(JobKey(int(row[0]), int(row[1]), int(row[2])), row[3], row[4], int(row[5]),
                 int(row[6]), *row[7:])


def worker_of(row: Sequence[Any], held: Sequence[JobKey]) -> Worker:
    info = leases.WorkerInfo(
        row[1], row[2], int(row[3]), tuple(orjson.loads(row[4])),
        tuple(orjson.loads(row[5])), row[6],
    )
    lost = None if row[11] is None else int(row[11])
    return Worker(row[0], info, row[7], int(row[8]), int(row[9]), int(row[10]), lost,
                  tuple(held))


def _key_arrays(keys: Sequence[JobKey]) -> dict[str, list[int]]:
    return {"projects": [k.project for k in keys], "spiders": [k.spider for k in keys],
            "jobs": [k.job for k in keys]}


async def register(conn: AsyncConnection[Any], worker: Worker) -> None:
    info = worker.info
    await conn.execute(W.insert_worker, {
        "worker_id": worker.worker_id, "name": info.name, "host": info.host,
        "slots": info.slots, "botgroups": changes.encode(list(info.botgroups)),
        "projects": changes.encode(list(info.projects)), "version": info.version,
        "owner": worker.owner, "registered_ms": worker.registered_ms,
        "last_heartbeat_ms": worker.last_heartbeat_ms, "expires_ms": worker.expires_ms,
        "lost_ms": worker.lost_ms,
    })


async def _held(conn: AsyncConnection[Any], worker_id: str | None) -> dict[str, list[JobKey]]:
    cursor = await conn.execute(W.held_jobs, {"worker_id": worker_id})
    held: dict[str, list[JobKey]] = {}
    for wid, p, s, j in await cursor.fetchall():
        held.setdefault(wid, []).append(JobKey(int(p), int(s), int(j)))
    return held


async def unregister(conn: AsyncConnection[Any], worker_id: str) -> bool:
    async with conn.transaction():
        held = (await _held(conn, worker_id)).get(worker_id)
        if held:
            raise errors.Conflict(
                f"worker {worker_id} still runs {', '.join(map(str, held))}: finish them first"
            )
        await conn.execute(W.delete_worker_leases, {"worker_id": worker_id})
        cursor = await conn.execute(W.delete_worker, {"worker_id": worker_id})
        return cursor.rowcount > 0


async def get_worker(conn: AsyncConnection[Any], worker_id: str) -> Worker | None:
    cursor = await conn.execute(W.worker, {"worker_id": worker_id})
    row = await cursor.fetchone()
    if row is None:
        return None
    return worker_of(row, (await _held(conn, worker_id)).get(worker_id, []))


async def list_workers(conn: AsyncConnection[Any]) -> list[Worker]:
    cursor = await conn.execute(W.workers)
    rows = await cursor.fetchall()
    held = await _held(conn, None)
    return [worker_of(row, held.get(row[0], [])) for row in rows]


async def heartbeat(
    conn: AsyncConnection[Any], worker_id: str, keys: Sequence[JobKey], now_ms: int,
    timeouts: Timeouts,
) -> list[JobAnswer] | None:
    keys = list(dict.fromkeys(keys))
    expires = leases.worker_expiry(now_ms, timeouts)
    async with conn.transaction():
        cursor = await conn.execute(
            W.beat_worker, {"worker_id": worker_id, "now": now_ms, "expires": expires})
        if cursor.rowcount == 0:
            return None
        if not keys:
            return []
        arrays = _key_arrays(keys)
        cursor = await conn.execute(
            W.renew_leases, {"worker_id": worker_id, "expires": expires, **arrays})
        own = {lease.key: lease for lease in map(lease_of, await cursor.fetchall())}
        cursor = await conn.execute(W.job_states, arrays)
        states: dict[JobKey, tuple[int | None, dict[str, Any]]] = {
            JobKey(int(p), int(s), int(j)): (int(state), orjson.loads(meta))
            for p, s, j, state, meta in await cursor.fetchall()}
        answers = []
        for key in keys:
            state, meta = states.get(key, (None, {}))
            answer, stop = leases.heartbeat_job(
                key, own.get(key), worker_id, state == State.RUNNING, meta, now_ms, timeouts)
            if stop is not None:
                await conn.execute(W.record_stop, {
                    "reason": stop.reason, "deadline": stop.deadline_ms,
                    "expiry": stop.expiry_reason, "project": key.project,
                    "spider": key.spider, "job": key.job, "worker_id": worker_id})
            answers.append(answer)
        return answers


async def start_leased_job(
    tx: _pg_tx.Tx, request: StartRequest, actor: str, lease: NewLease
) -> _pg_tx.Later | None:
    """A late-locking claim (see `postgres.py`) that also writes the lease at commit."""
    row = await tx.one(W.worker_lost, {"worker_id": lease.worker_id})
    if row is None:
        raise errors.NotFound(f"worker_id: no registered worker {lease.worker_id!r}")
    if row[0] is not None:
        raise errors.Conflict(
            f"worker_id: worker {lease.worker_id} was declared lost; heartbeat before claiming"
        )
    later = await _pg_tx.start_job(tx, request, actor)
    if later is None:
        return None
    key, _ = later.make(0)  # the key does not depend on the position
    tx.writes.append((W.insert_lease, {
        "project": key.project, "spider": key.spider, "job": key.job,
        "worker_id": lease.worker_id, "lease_id": lease.lease_id,
        "claimed_ms": lease.claimed_ms, "expires_ms": lease.expires_ms,
        "runtime_deadline_ms": lease.runtime_deadline_ms,
    }, None))
    return later


async def reaper_tick(
    conn: AsyncConnection[Any], now_ms: int, gap_ms: int, timeouts: Timeouts
) -> bool:
    async with conn.transaction():
        cursor = await conn.execute(W.reaper_state_for_update)
        row = await cursor.fetchone()
        grace = leases.needs_grace(int(row[0]) if row else 0, now_ms, gap_ms)
        if grace:
            renewed = {"expires": leases.worker_expiry(now_ms, timeouts)}
            await conn.execute(W.grace_leases, renewed)
            await conn.execute(W.grace_workers, renewed)
        await conn.execute(W.save_tick, {"now": now_ms})
        await conn.execute(W.mark_lost_workers, {"now": now_ms})
        return grace


async def due_leases(conn: AsyncConnection[Any], now_ms: int, limit: int) -> list[Lease]:
    cursor = await conn.execute(W.due_leases, {"now": now_ms, "limit": limit})
    return [lease_of(row) for row in await cursor.fetchall()]


async def expire_lease(tx: _pg_tx.Tx, lease: Lease, policy: LostPolicy, now_ms: int) -> str | None:
    key = lease.key
    row = await tx.one(W.take_due_lease, {
        "project": key.project, "spider": key.spider, "job": key.job,
        "lease_id": lease.lease_id, "now": now_ms})
    if row is None:
        return None
    taken = lease_of(row)
    kind = leases.due(taken, now_ms)
    found = await tx.all(Q.job_for_update, {
        "project": key.project, "spider": key.spider, "job": key.job})
    if not found or int(found[0][2]) != State.RUNNING:
        return None
    meta = orjson.loads(found[0][3])
    if kind is leases.Due.EXPIRED and leases.lost_outcome(policy, meta) is (
            leases.LostOutcome.REQUEUE):
        await _pg_tx._store(tx, key.spider, key.job, leases.requeued(meta, tx.take))
        await _pg_chunks.clear_streams(tx.conn, key, leases.REQUEUE_CLEARS)
        return "requeued"
    reason = leases.LOST if kind is leases.Due.EXPIRED else (taken.expiry_reason or leases.LOST)
    await _pg_tx.update(
        tx, [JobUpdate(key, State.FINISHED, {"close_reason": reason})], leases.REAPER)
    return reason


def time_limit_params(lease: Lease, stop: Stop, now_ms: int) -> dict[str, Any]:
    key = lease.key
    return {"reason": stop.reason, "deadline": stop.deadline_ms, "expiry": stop.expiry_reason,
            "project": key.project, "spider": key.spider, "job": key.job,
            "lease_id": lease.lease_id, "now": now_ms}


#: seconds between attempts to listen again after the connection was lost
LISTEN_RETRY = 1.0


async def watch_pending(
    url: str, connect_kwargs: dict[str, Any], notify: Callable[[int], None]
) -> None:
    """LISTEN on a connection of its own (outside the pool) for `jobq_pending`, sent by the
    jobs triggers of migration 0003 when a job becomes pending; reconnect when it drops."""
    while True:
        try:
            conn = await AsyncConnection.connect(url, **connect_kwargs)
            async with conn:
                await conn.execute("LISTEN jobq_pending")
                async for note in conn.notifies():
                    if note.payload.isdigit():
                        notify(int(note.payload))
        except psycopg.Error as exc:
            log.warning("listening for pending jobs: %s", exc)
        await asyncio.sleep(LISTEN_RETRY)
