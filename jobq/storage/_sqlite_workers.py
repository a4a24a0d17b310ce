"""Workers and leases on SQLite (issue 10): transactions run by the group-commit writer
(one writer of the file, so a read then a write needs no further lock), rules from
`jobq.domain.leases`. State changes go through `_sqlite_tx` (positions, counts)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from jobq import errors
from jobq.domain import changes, leases
from jobq.domain.jobs import JobKey, State
from jobq.domain.leases import JobAnswer, Lease, LostPolicy, NewLease, Stop, Timeouts, Worker
from jobq.domain.records import JobUpdate, StartRequest
from jobq.storage import _sqlite_chunks
from jobq.storage import _sqlite_tx as tx

_LEASE_COLUMNS = (
    "project_id, spider_id, job_no, worker_id, lease_id, claimed_ms, expires_ms,"
    " runtime_deadline_ms, stop_reason, stop_deadline_ms, expiry_reason"
)
_WORKER_COLUMNS = (
    "worker_id, name, host, slots, botgroups, projects, version, owner, registered_ms,"
    " last_heartbeat_ms, expires_ms, lost_ms"
)


def lease_of(row: Sequence[Any]) -> Lease:
    return Lease(JobKey(int(row[0]), int(row[1]), int(row[2])), *row[3:])


def worker_of(row: Sequence[Any], held: Sequence[JobKey]) -> Worker:
    info = leases.WorkerInfo(
        row[1], row[2], int(row[3]), tuple(orjson.loads(row[4])),
        tuple(orjson.loads(row[5])), row[6],
    )
    return Worker(row[0], info, row[7], row[8], row[9], row[10], row[11], tuple(held))


def register(conn: sqlite3.Connection, worker: Worker) -> None:
    info = worker.info
    conn.execute(
        f"INSERT INTO workers ({_WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (worker.worker_id, info.name, info.host, info.slots, changes.encode(list(info.botgroups)),
         changes.encode(list(info.projects)), info.version, worker.owner, worker.registered_ms,
         worker.last_heartbeat_ms, worker.expires_ms, worker.lost_ms),
    )


def _held(conn: sqlite3.Connection, worker_id: str) -> list[JobKey]:
    """The running jobs a worker holds leases on."""
    rows = conn.execute(
        "SELECT l.project_id, l.spider_id, l.job_no FROM leases l JOIN jobs j"
        " ON j.project_id = l.project_id AND j.spider_id = l.spider_id AND j.job_no = l.job_no"
        " WHERE l.worker_id = ? AND j.state = 1 ORDER BY 1, 2, 3",
        (worker_id,),
    )
    return [JobKey(*row) for row in rows]


def unregister(conn: sqlite3.Connection, worker_id: str) -> bool:
    held = _held(conn, worker_id)
    if held:
        raise errors.Conflict(
            f"worker {worker_id} still runs {', '.join(map(str, held))}: finish them first"
        )
    conn.execute("DELETE FROM leases WHERE worker_id = ?", (worker_id,))
    return conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,)).rowcount > 0


def get_worker(conn: sqlite3.Connection, worker_id: str) -> Worker | None:
    row = conn.execute(
        f"SELECT {_WORKER_COLUMNS} FROM workers WHERE worker_id = ?", (worker_id,)
    ).fetchone()
    return worker_of(row, _held(conn, worker_id)) if row else None


def list_workers(conn: sqlite3.Connection) -> list[Worker]:
    rows = conn.execute(f"SELECT {_WORKER_COLUMNS} FROM workers ORDER BY registered_ms, 1")
    return [worker_of(row, _held(conn, row[0])) for row in rows.fetchall()]


def _job_state(conn: sqlite3.Connection, key: JobKey) -> tuple[int, int, dict[str, Any]] | None:
    """(row id, state, stored metadata) of a job, unless removed."""
    row = conn.execute(
        "SELECT id, state, meta FROM jobs WHERE project_id = ? AND spider_id = ? AND job_no = ?"
        " AND state <> 4",
        (key.project, key.spider, key.job),
    ).fetchone()
    return (row[0], row[1], orjson.loads(row[2])) if row else None


def _lease(conn: sqlite3.Connection, key: JobKey) -> Lease | None:
    row = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM leases"
        " WHERE project_id = ? AND spider_id = ? AND job_no = ?",
        (key.project, key.spider, key.job),
    ).fetchone()
    return lease_of(row) if row else None


def heartbeat(
    conn: sqlite3.Connection, worker_id: str, keys: Sequence[JobKey], now_ms: int,
    timeouts: Timeouts,
) -> list[JobAnswer] | None:
    expires = leases.worker_expiry(now_ms, timeouts)
    found = conn.execute(
        "UPDATE workers SET last_heartbeat_ms = ?, expires_ms = ?, lost_ms = NULL"
        " WHERE worker_id = ?",
        (now_ms, expires, worker_id),
    ).rowcount
    if not found:
        return None
    answers = []
    for key in dict.fromkeys(keys):
        lease = _lease(conn, key)
        job = _job_state(conn, key)
        running = job is not None and job[1] == State.RUNNING
        answer, stop = leases.heartbeat_job(
            key, lease, worker_id, running, job[2] if job is not None else {}, now_ms, timeouts)
        if lease is not None and lease.worker_id == worker_id and running:
            _renew(conn, key, worker_id, expires, stop)
        answers.append(answer)
    return answers


def _renew(
    conn: sqlite3.Connection, key: JobKey, worker_id: str, expires: int, stop: Stop | None
) -> None:
    sets: list[str] = ["expires_ms = MAX(expires_ms, ?)"]
    values: list[Any] = [expires]
    if stop is not None:
        sets += ["stop_reason = ?", "stop_deadline_ms = ?", "expiry_reason = ?"]
        values += [stop.reason, stop.deadline_ms, stop.expiry_reason]
    conn.execute(
        f"UPDATE leases SET {', '.join(sets)}"
        " WHERE project_id = ? AND spider_id = ? AND job_no = ? AND worker_id = ?",
        (*values, key.project, key.spider, key.job, worker_id),
    )


def _check_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    row = conn.execute("SELECT lost_ms FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
    if row is None:
        raise errors.NotFound(f"worker_id: no registered worker {worker_id!r}")
    if row[0] is not None:
        raise errors.Conflict(
            f"worker_id: worker {worker_id} was declared lost; heartbeat before claiming"
        )


def start_leased_job(
    conn: sqlite3.Connection, project: int, request: StartRequest, actor: str, lease: NewLease,
    now_ms: int,
) -> tuple[JobKey, dict[str, Any]] | None:
    _check_worker(conn, lease.worker_id)
    claimed = tx.start_job(conn, project, request, actor, now_ms)
    if claimed is None:
        return None
    key = claimed[0]
    conn.execute(
        f"INSERT OR REPLACE INTO leases ({_LEASE_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        (key.project, key.spider, key.job, lease.worker_id, lease.lease_id, lease.claimed_ms,
         lease.expires_ms, lease.runtime_deadline_ms),
    )
    return claimed


def reaper_tick(conn: sqlite3.Connection, now_ms: int, gap_ms: int, timeouts: Timeouts) -> bool:
    (last,) = conn.execute("SELECT last_tick_ms FROM reaper_state WHERE id = 1").fetchone()
    grace = leases.needs_grace(last, now_ms, gap_ms)
    if grace:
        renewed = leases.worker_expiry(now_ms, timeouts)
        conn.execute("UPDATE leases SET expires_ms = MAX(expires_ms, ?)", (renewed,))
        conn.execute(
            "UPDATE workers SET expires_ms = MAX(expires_ms, ?) WHERE lost_ms IS NULL",
            (renewed,),
        )
    conn.execute("UPDATE reaper_state SET last_tick_ms = MAX(last_tick_ms, ?)", (now_ms,))
    conn.execute(
        "UPDATE workers SET lost_ms = ? WHERE lost_ms IS NULL AND expires_ms <= ?",
        (now_ms, now_ms),
    )
    return grace


def due_leases(conn: sqlite3.Connection, now_ms: int, limit: int) -> list[Lease]:
    rows = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM leases WHERE expires_ms <= ?1"
        " UNION SELECT {cols} FROM leases WHERE stop_deadline_ms <= ?1"
        " UNION SELECT {cols} FROM leases WHERE runtime_deadline_ms <= ?1"
        " AND stop_deadline_ms IS NULL"
        " ORDER BY 7, 1, 2, 3 LIMIT ?2".replace("{cols}", _LEASE_COLUMNS),
        (now_ms, limit),
    )
    return [lease_of(row) for row in rows]


def expire_lease(
    conn: sqlite3.Connection, lease: Lease, policy: LostPolicy, now_ms: int
) -> str | None:
    key = lease.key
    row = conn.execute(
        f"DELETE FROM leases WHERE project_id = ? AND spider_id = ? AND job_no = ?"
        " AND lease_id = ? AND (expires_ms <= ? OR stop_deadline_ms <= ?)"
        f" RETURNING {_LEASE_COLUMNS}",
        (key.project, key.spider, key.job, lease.lease_id, now_ms, now_ms),
    ).fetchone()
    taken = lease_of(row) if row else None
    kind = leases.due(taken, now_ms) if taken is not None else None
    job = _job_state(conn, key)
    if taken is None or job is None or job[1] != State.RUNNING:
        return None
    row_id, _, meta = job
    if kind is leases.Due.EXPIRED and leases.lost_outcome(policy, meta) is (
            leases.LostOutcome.REQUEUE):
        positions = tx.Positions(conn, key.project, now_ms)
        tx._store(conn, row_id, leases.requeued(meta, positions.take))
        positions.save()
        _sqlite_chunks.clear_streams(conn, key, leases.REQUEUE_CLEARS)
        return "requeued"
    reason = leases.LOST if kind is leases.Due.EXPIRED else (taken.expiry_reason or leases.LOST)
    tx.update(conn, key.project, [JobUpdate(key, State.FINISHED, {"close_reason": reason})],
              leases.REAPER, now_ms)
    return reason


def request_stop(conn: sqlite3.Connection, lease: Lease, stop: Stop, now_ms: int) -> bool:
    key = lease.key
    return conn.execute(
        "UPDATE leases SET stop_reason = ?, stop_deadline_ms = ?, expiry_reason = ?"
        " WHERE project_id = ? AND spider_id = ? AND job_no = ? AND lease_id = ?"
        " AND stop_deadline_ms IS NULL AND runtime_deadline_ms <= ?",
        (stop.reason, stop.deadline_ms, stop.expiry_reason, key.project, key.spider, key.job,
         lease.lease_id, now_ms),
    ).rowcount > 0

