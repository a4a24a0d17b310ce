"""The chunk store of the PostgreSQL backend: chunks and heads in the job database.

A write is one transaction: the job row `FOR SHARE` (a finish waits for it, so the state
it read holds until commit), the stream's head `FOR UPDATE` (writes of one stream go one
at a time), the chunks, the head; answered once committed. Reads take no lock and run a
page of chunks a statement.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import orjson
from psycopg import AsyncConnection

from jobq.domain import records_data
from jobq.domain.jobs import JobKey, position_floor
from jobq.domain.records_data import Kind
from jobq.storage._pg_sql import parse_queries, sql_file
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
Runner = Callable[[Callable[[AsyncConnection[Any]], Awaitable[T]]], Awaitable[T]]


@functools.cache
def _queries() -> dict[str, str]:
    return parse_queries(sql_file("jobdata.sql"))


def _q(name: str) -> Any:
    return _queries()[name]


def _job(job: JobKey) -> dict[str, int]:
    return {"project": job.project, "spider": job.spider, "job": job.job}


def _stream(stream: StreamRef) -> dict[str, int]:
    return {**_job(stream.job), "kind": stream.kind.code}


async def clear_streams(conn: AsyncConnection[Any], job: JobKey, kinds: Iterable[Kind]) -> None:
    """Remove the chunks and heads of `job`'s streams of `kinds`, in the caller's
    transaction (a requeue: `jobq.domain.leases.REQUEUE_CLEARS`)."""
    params = {**_job(job), "kinds": [kind.code for kind in kinds]}
    await conn.execute(_q("clear_stream_chunks"), params)
    await conn.execute(_q("clear_stream_heads"), params)


class PostgresChunkStore(ChunkStore):
    """Chunks in PostgreSQL, through the backend's pool."""

    def __init__(self, run: Runner[Any]) -> None:
        self._run = run

    async def append(
        self, stream: StreamRef, start: int | None, prepared: Prepared, admin: bool,
        cap: int | None, now_ms: int, run: int | None = None,
    ) -> Appended:
        params = _stream(stream)

        async def write(conn: AsyncConnection[Any]) -> Appended:
            async with conn.transaction():
                cursor = await conn.execute(_q("job_state_shared"), params)
                state = job_state(stream, await cursor.fetchone(), run)
                await conn.execute(_q("ensure_head"), params)
                cursor = await conn.execute(_q("head_for_update"), params)
                head = await cursor.fetchone()
                assert head is not None
                next_index = int(head[0])
                placement = records_data.place(
                    stream.job, stream.kind, state, admin, next_index, start,
                    len(prepared.batch), cap)
                if not placement.stored:
                    return Appended(placement, next_index)
                chunks, stats = prepared.part(placement)
                async with conn.cursor() as cur:
                    await cur.executemany(_q("insert_chunk"), [
                        {**params, "first": placement.first_index + c.offset, "n": c.count,
                         "ts": now_ms, "raw_bytes": c.raw_bytes, "data": c.data}
                        for c in chunks])
                total = head_from_row(next_index, int(head[1]), orjson.loads(head[2])).stats
                total.merge(stats)
                new_next = next_index + placement.stored
                await conn.execute(_q("save_head"), {
                    **params, "next_index": new_next, "input_bytes": total.input_bytes,
                    "counts": orjson.dumps(total.counts).decode()})
                return Appended(placement, new_next)

        appended: Appended = await self._run(write)
        return appended

    async def head(self, stream: StreamRef) -> Head | None:
        async def read(conn: AsyncConnection[Any]) -> Head | None:
            cursor = await conn.execute(_q("head"), _stream(stream))
            row = await cursor.fetchone()
            if row is None:
                return None
            return head_from_row(int(row[0]), int(row[1]), orjson.loads(row[2]))

        head: Head | None = await self._run(read)
        return head

    async def chunks(self, stream: StreamRef, from_index: int, limit: int) -> list[StoredChunk]:
        async def read(conn: AsyncConnection[Any]) -> list[StoredChunk]:
            cursor = await conn.execute(
                _q("chunks_from"), {**_stream(stream), "from": from_index, "limit": limit})
            return [StoredChunk(int(first), int(n), int(ts), bytes(data))
                    for first, n, ts, data in await cursor.fetchall()]

        found: list[StoredChunk] = await self._run(read)
        return found

    async def delete_chunks(self, job: JobKey, limit: int) -> int:
        async def delete(conn: AsyncConnection[Any]) -> int:
            async with conn.transaction():
                cursor = await conn.execute(_q("delete_chunks"), {**_job(job), "limit": limit})
                deleted = cursor.rowcount
                if deleted < limit:
                    await conn.execute(_q("delete_heads"), _job(job))
                return deleted

        deleted: int = await self._run(delete)
        return deleted

    async def _keys(self, name: str, params: dict[str, Any]) -> list[JobKey]:
        async def read(conn: AsyncConnection[Any]) -> list[JobKey]:
            cursor = await conn.execute(_q(name), params)
            return [JobKey(int(p), int(s), int(j)) for p, s, j in await cursor.fetchall()]

        found: list[JobKey] = await self._run(read)
        return found

    async def orphaned(self, limit: int) -> list[JobKey]:
        return await self._keys("orphaned", {"limit": limit})

    async def expired(self, project: int, finished_before_ms: int, limit: int) -> list[JobKey]:
        return await self._keys("expired", {
            "project": project, "before": position_floor(finished_before_ms), "limit": limit})

    async def projects_with_data(self) -> list[int]:
        async def read(conn: AsyncConnection[Any]) -> list[int]:
            cursor = await conn.execute(_q("projects_with_data"))
            return [int(r[0]) for r in await cursor.fetchall()]

        found: list[int] = await self._run(read)
        return found

