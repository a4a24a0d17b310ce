"""The chunk store of the SQLite backend: chunks and heads in the job database.

Writes run on the backend's group-commit writer (durable when answered); reads on its
reader threads, a page of chunks a call, so a long download never holds the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import orjson

from jobq.domain import records_data
from jobq.domain.jobs import JobKey, position_floor
from jobq.domain.records_data import Kind, Stats
from jobq.storage.chunks import (
    Appended,
    ChunkStore,
    Head,
    Prepared,
    StoredChunk,
    StreamRef,
    head_from_row,
    job_state,
)

T = TypeVar("T")
Runner = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

_STREAM = "project_id = ? AND spider_id = ? AND job_no = ? AND kind = ?"
_JOB = "project_id = ? AND spider_id = ? AND job_no = ?"


def _stream_params(stream: StreamRef) -> tuple[int, int, int, int]:
    return (*stream.job, stream.kind.code)


def _append(
    conn: sqlite3.Connection, stream: StreamRef, start: int | None, prepared: Prepared,
    admin: bool, cap: int | None, now_ms: int, run: int | None,
) -> Appended:
    params = _stream_params(stream)
    row = conn.execute(f"SELECT state, running_position FROM jobs WHERE {_JOB}",
                       params[:3]).fetchone()
    state = job_state(stream, row, run)
    head = conn.execute(
        f"SELECT next_index, input_bytes, counts FROM job_data_heads WHERE {_STREAM}", params
    ).fetchone()
    next_index = head[0] if head else 0
    placement = records_data.place(stream.job, stream.kind, state, admin, next_index, start,
                                   len(prepared.batch), cap)
    if not placement.stored:
        return Appended(placement, next_index)
    chunks, stats = prepared.part(placement)
    conn.executemany(
        "INSERT INTO job_data_chunks (project_id, spider_id, job_no, kind, first_index, n, ts,"
        " raw_bytes, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*params, placement.first_index + c.offset, c.count, now_ms, c.raw_bytes, c.data)
         for c in chunks],
    )
    total = head_from_row(head[0], head[1], orjson.loads(head[2])).stats if head else Stats()
    total.merge(stats)
    conn.execute(
        "INSERT INTO job_data_heads (project_id, spider_id, job_no, kind, next_index,"
        " input_bytes, counts) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (project_id, spider_id, job_no, kind) DO UPDATE SET"
        " next_index = excluded.next_index, input_bytes = excluded.input_bytes,"
        " counts = excluded.counts",
        (*params, next_index + placement.stored, total.input_bytes, orjson.dumps(total.counts)),
    )
    return Appended(placement, next_index + placement.stored)


def _head(conn: sqlite3.Connection, stream: StreamRef) -> Head | None:
    row = conn.execute(
        f"SELECT next_index, input_bytes, counts FROM job_data_heads WHERE {_STREAM}",
        _stream_params(stream),
    ).fetchone()
    return head_from_row(row[0], row[1], orjson.loads(row[2])) if row else None


def _chunks(
    conn: sqlite3.Connection, stream: StreamRef, from_index: int, limit: int
) -> list[StoredChunk]:
    params = _stream_params(stream)
    rows = conn.execute(
        "SELECT first_index, n, ts, data FROM job_data_chunks"
        f" WHERE {_STREAM} AND first_index >= coalesce(("
        f"   SELECT max(first_index) FROM job_data_chunks WHERE {_STREAM} AND first_index <= ?"
        " ), 0) ORDER BY first_index LIMIT ?",
        (*params, *params, from_index, limit),
    )
    return [StoredChunk(first, n, ts, data) for first, n, ts, data in rows]


def _delete_chunks(conn: sqlite3.Connection, job: JobKey, limit: int) -> int:
    deleted = conn.execute(
        "DELETE FROM job_data_chunks WHERE rowid IN ("
        f" SELECT rowid FROM job_data_chunks WHERE {_JOB} LIMIT ?)",
        (*job, limit),
    ).rowcount
    if deleted < limit:
        conn.execute(
            f"DELETE FROM job_data_heads WHERE {_JOB} AND NOT EXISTS (SELECT 1 FROM"
            " job_data_chunks c WHERE c.project_id = job_data_heads.project_id"
            " AND c.spider_id = job_data_heads.spider_id AND c.job_no = job_data_heads.job_no"
            " AND c.kind = job_data_heads.kind)", tuple(job))
    return deleted


def clear_streams(conn: sqlite3.Connection, job: JobKey, kinds: Iterable[Kind]) -> None:
    """Remove the chunks and heads of `job`'s streams of `kinds`, in the caller's
    transaction (a requeue: `jobq.domain.leases.REQUEUE_CLEARS`)."""
    for kind in kinds:
        params = (*job, kind.code)
        conn.execute(f"DELETE FROM job_data_chunks WHERE {_STREAM}", params)
        conn.execute(f"DELETE FROM job_data_heads WHERE {_STREAM}", params)


def _keys(rows: Any) -> list[JobKey]:
    return [JobKey(p, s, j) for p, s, j in rows]


class SqliteChunkStore(ChunkStore):
    """Chunks in the SQLite file, through the backend's writer and readers."""

    def __init__(self, write: Runner[Any], read: Runner[Any]) -> None:
        self._write = write
        self._read = read

    async def append(
        self, stream: StreamRef, start: int | None, prepared: Prepared, admin: bool,
        cap: int | None, now_ms: int, run: int | None = None,
    ) -> Appended:
        appended: Appended = await self._write(
            lambda conn: _append(conn, stream, start, prepared, admin, cap, now_ms, run))
        return appended

    async def head(self, stream: StreamRef) -> Head | None:
        head: Head | None = await self._read(lambda conn: _head(conn, stream))
        return head

    async def chunks(self, stream: StreamRef, from_index: int, limit: int) -> list[StoredChunk]:
        found: list[StoredChunk] = await self._read(
            lambda conn: _chunks(conn, stream, from_index, limit))
        return found

    async def delete_chunks(self, job: JobKey, limit: int) -> int:
        deleted: int = await self._write(lambda conn: _delete_chunks(conn, job, limit))
        return deleted

    async def orphaned(self, limit: int) -> list[JobKey]:
        found: list[JobKey] = await self._read(lambda conn: _keys(conn.execute(
            "SELECT DISTINCT h.project_id, h.spider_id, h.job_no FROM job_data_heads h"
            " LEFT JOIN jobs j ON j.project_id = h.project_id AND j.spider_id = h.spider_id"
            "  AND j.job_no = h.job_no"
            " WHERE j.state IS NULL OR j.state IN (3, 4) LIMIT ?", (limit,))))
        return found

    async def expired(self, project: int, finished_before_ms: int, limit: int) -> list[JobKey]:
        found: list[JobKey] = await self._read(lambda conn: _keys(conn.execute(
            "SELECT DISTINCT h.project_id, h.spider_id, h.job_no FROM job_data_heads h"
            " JOIN jobs j ON j.project_id = h.project_id AND j.spider_id = h.spider_id"
            "  AND j.job_no = h.job_no"
            " WHERE h.project_id = ? AND j.state = 2 AND j.position < ? LIMIT ?",
            (project, position_floor(finished_before_ms), limit))))
        return found

    async def projects_with_data(self) -> list[int]:
        found: list[int] = await self._read(lambda conn: [r[0] for r in conn.execute(
            "SELECT DISTINCT project_id FROM job_data_heads ORDER BY 1")])
        return found
