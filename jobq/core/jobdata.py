"""What jobs produce (items, log lines, requests): writes, reads and the janitor that
removes the data of deleted jobs and, per the project's `data_retention_days`, of jobs
finished long ago. Access rules as for `jobs/`; nothing here knows HTTP or SQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jobq import errors
from jobq.core.credentials import Principal, bound_run, check_run
from jobq.domain import project_settings, records_data
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.jobs import JobKey
from jobq.domain.records_data import Kind, Stats
from jobq.domain.records_query import ReadQuery
from jobq.storage.base import Storage
from jobq.storage.chunks import ChunkStore, Prepared, StoredChunk, StreamRef

log = logging.getLogger(__name__)

#: chunks fetched by one read of a download (each up to chunks.CHUNK_BYTES)
PAGE_CHUNKS = 8
#: bodies larger than this are parsed and compressed off the event loop (bytes)
THREAD_BODY_BYTES = 32 * 1024
#: chunks deleted by one transaction of the janitor (small: writers wait for none long)
DELETE_BATCH = 64
#: jobs the janitor takes on per pass and query
JANITOR_JOBS = 100
RETENTION_SETTING = "data_retention_days"
REMOVED_FIELD = "data_removed_time"
DAY_MS = 86_400_000


@dataclass(slots=True)
class Block:
    """Consecutive output records of one chunk: their indexes, write time and JSON lines;
    `objects()` parses them (once) for the formats and filters that need it."""

    indexes: Sequence[int]
    ts: int
    lines: list[bytes]
    _objects: list[dict[str, Any]] | None = None

    def objects(self) -> list[dict[str, Any]]:
        if self._objects is None:
            self._objects = orjson.loads(b"[" + b",".join(self.lines) + b"]")
        return self._objects


def retention_days(settings: dict[str, Any]) -> float | None:
    """The project's `data_retention_days` (None: keep data forever)."""
    value = settings.get(RETENTION_SETTING)
    if value is None:
        return None
    if not project_settings.is_number(value) or value < 0:
        raise errors.BadRequest(f"setting {RETENTION_SETTING}: expected a number of days >= 0")
    return float(value)


class JobData:
    def __init__(
        self, storage: Storage, chunks: ChunkStore, max_inflated: int, clock: Clock = SYSTEM
    ) -> None:
        self.storage = storage
        self.chunks = chunks
        self.max_inflated = max_inflated
        self.clock = clock

    # -- writes ----------------------------------------------------------------------------

    async def write(
        self, who: Principal, kind: Kind, key: JobKey, start: int | None, body: bytes,
        encoding: str | None,
    ) -> int:
        """Store a batch of records at `start` (the next index when None); returns how
        many were stored (a retried batch: none)."""
        who.check_job(key)
        cap = records_data.cap_of(kind, await self.storage.get_settings(key.project))
        if len(body) > THREAD_BODY_BYTES:
            prepared = await asyncio.to_thread(self._prepare, kind, body, encoding, start)
        else:
            prepared = self._prepare(kind, body, encoding, start)
        await check_run(self.storage, who)  # a lost worker's token writes nothing
        appended = await self.chunks.append(
            StreamRef(key, kind), start, prepared, who.is_admin, cap, self.clock.now_ms(),
            run=bound_run(who))
        placed = appended.placement
        if placed.capped:
            await self.storage.set_job_meta(key, {kind.truncated_field: True})
            raise errors.PayloadTooLarge(
                f"job {key} reached its cap of {cap} {kind.noun} (project setting"
                f" {kind.cap_setting}): {placed.capped} record(s) of this batch were not stored")
        return placed.stored

    def _prepare(self, kind: Kind, body: bytes, encoding: str | None, start: int | None
                 ) -> Prepared:
        raw = records_data.inflate(body, encoding, self.max_inflated)
        return Prepared.of(records_data.parse_batch(kind, raw, start))

    # -- reads -----------------------------------------------------------------------------

    async def open_stream(self, who: Principal, kind: Kind, key: JobKey) -> StreamRef:
        """Check access and that the job exists, before any byte of an answer goes out."""
        who.check_job(key)
        if await self.storage.get_job_meta(key) is None:
            raise errors.NotFound(f"job {key} not found")
        return StreamRef(key, kind)

    async def stats(self, stream: StreamRef) -> dict[str, Any]:
        head = await self.chunks.head(stream)
        return (head.stats if head else Stats()).render()

    async def record(self, stream: StreamRef, index: int, query: ReadQuery) -> Block:
        async for block in self.blocks(stream, ReadQuery(
                indexes=(index,), meta=query.meta, nodata=query.nodata)):
            return block
        raise errors.NotFound(f"job {stream.job} has no {stream.kind.value[:-1]} {index}")

    async def blocks(
        self, stream: StreamRef, query: ReadQuery
    ) -> AsyncGenerator[Block, None]:
        """The records a read asks for, in index order, a chunk at a time: the whole job
        is never in memory."""
        remaining = query.count
        if query.indexes is not None:
            source = self._indexed(stream, query.indexes)
        else:
            source = self._ranged(stream, query.start)
        async for chunk, lo, hi in source:
            if remaining is not None and remaining <= 0:
                break
            if (query.startts is not None and chunk.ts < query.startts) or (
                    query.endts is not None and chunk.ts >= query.endts):
                continue
            lines = chunk.lines()[lo:hi]
            block = Block(range(chunk.first + lo, chunk.first + hi), chunk.ts, lines)
            if query.filters:
                kept = [i for i, obj in enumerate(block.objects()) if query.keep(obj)]
                if not kept:
                    continue
                objects = block.objects()
                block = Block([block.indexes[i] for i in kept], chunk.ts,
                              [lines[i] for i in kept], [objects[i] for i in kept])
            if remaining is not None:
                if len(block.lines) > remaining:
                    block = Block(block.indexes[:remaining], block.ts, block.lines[:remaining],
                                  None if block._objects is None
                                  else block._objects[:remaining])
                remaining -= len(block.lines)
            yield block

    async def _ranged(
        self, stream: StreamRef, start: int
    ) -> AsyncIterator[tuple[StoredChunk, int, int]]:
        position = start
        while True:
            page = await self.chunks.chunks(stream, position, PAGE_CHUNKS)
            for chunk in page:
                end = chunk.first + chunk.count
                if end <= position:
                    continue
                yield chunk, max(0, position - chunk.first), chunk.count
                position = end
            if len(page) < PAGE_CHUNKS:
                return

    async def _indexed(
        self, stream: StreamRef, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[StoredChunk, int, int]]:
        for index in indexes:
            page = await self.chunks.chunks(stream, index, 1)
            if page and page[0].first <= index < page[0].first + page[0].count:
                offset = index - page[0].first
                yield page[0], offset, offset + 1

    # -- the janitor -----------------------------------------------------------------------

    async def sweep(self) -> int:
        """One pass: remove the data of deleted and removed jobs, and of finished jobs past
        their project's retention. Returns how many chunks went."""
        removed = 0
        for job in await self.chunks.orphaned(JANITOR_JOBS):
            removed += await self._drain(job)
        now = self.clock.now_ms()
        for project in await self.chunks.projects_with_data():
            try:
                days = retention_days(await self.storage.get_settings(project))
            except errors.BadRequest as exc:
                log.warning("project %d: %s", project, exc.message)
                continue
            if days is None:
                continue
            for job in await self.chunks.expired(project, now - round(days * DAY_MS),
                                                 JANITOR_JOBS):
                meta = await self.storage.get_job_meta(job)
                if meta is not None and REMOVED_FIELD not in meta:
                    await self.storage.set_job_meta(job, {REMOVED_FIELD: now})
                removed += await self._drain(job)
        return removed

    async def _drain(self, job: JobKey) -> int:
        removed = 0
        while True:
            deleted = await self.chunks.delete_chunks(job, DELETE_BATCH)
            removed += deleted
            if deleted < DELETE_BATCH:
                return removed

    async def run_janitor(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled."""
        while True:
            try:
                removed = await self.sweep()
                if removed:
                    log.info("removed %d chunks of job data", removed,
                             extra={"action": "jobdata_removed", "chunks": removed})
            except errors.JobqError as exc:
                log.warning("job data janitor: %s", exc.message)
            await asyncio.sleep(interval)
