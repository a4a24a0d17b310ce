"""The chunk store: where a job's items, log lines and requests live.

Records are stored in compressed chunks, not one row a record: a chunk holds up to
`CHUNK_RECORDS` consecutive records (or about `CHUNK_BYTES` of JSON lines), compressed
with zstd. A job's records of one kind (a *stream*) are numbered from 0; a chunk is
named by its stream and the index of its first record, so the chunks of a stream are
found, in order, from any index by one range scan. A stream also has a head: the next
index, the stats and the write times.

`ChunkStore` is the small interface the job-data service uses; `SqliteChunkStore` and
`PostgresChunkStore` keep chunks in the job database. An S3-compatible object store fits
the same interface (a chunk is an immutable object named `PID/SID/JOB/KIND/FIRST`; the
head a row in the database, written after the chunks it covers).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zstandard

from jobq import errors
from jobq.domain import leases
from jobq.domain.jobs import BY_NUMBER, JobKey, State, ts_of
from jobq.domain.records_data import Batch, Kind, Placement, Stats

#: most records in one chunk
CHUNK_RECORDS = 1000
#: most bytes of JSON lines in one chunk (before compression)
CHUNK_BYTES = 256 * 1024
#: zstd level: 3 compresses JSON about as well as gzip -6, several times faster
ZSTD_LEVEL = 3

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # a compressor is not thread-safe: one per thread
    found: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def compress(lines: Sequence[bytes]) -> bytes:
    return _compressor().compress(b"\n".join(lines))


def decompress(data: bytes) -> list[bytes]:
    return _decompressor().decompress(data).split(b"\n")


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk ready to store: `offset` is its first record's place in the batch."""

    offset: int
    count: int
    raw_bytes: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredChunk:
    first: int
    count: int
    ts: int
    data: bytes

    def lines(self) -> list[bytes]:
        return decompress(self.data)


@dataclass(slots=True)
class Prepared:
    """A parsed batch, compressed into chunks before the write transaction (so that the
    compression runs outside it)."""

    batch: Batch
    chunks: list[NewChunk]

    @classmethod
    def of(cls, batch: Batch) -> Prepared:
        return cls(batch, split(batch.lines))

    def part(self, placement: Placement) -> tuple[list[NewChunk], Stats]:
        """The chunks and stats of the records `placement` stores (a retried or capped
        batch stores a part only: its chunks are made anew)."""
        lo, hi = placement.lo, placement.hi
        if (lo, hi) == (0, len(self.batch)):
            return self.chunks, self.batch.stats()
        return split(self.batch.lines[lo:hi]), self.batch.stats(lo, hi)


def split(lines: Sequence[bytes]) -> list[NewChunk]:
    """Consecutive records in chunks of at most CHUNK_RECORDS records and, unless one
    record is larger, CHUNK_BYTES bytes."""
    chunks: list[NewChunk] = []
    start = size = 0
    for i, line in enumerate(lines):
        if i > start and (i - start >= CHUNK_RECORDS or size + len(line) > CHUNK_BYTES):
            chunks.append(_chunk(lines, start, i, size))
            start, size = i, 0
        size += len(line) + 1
    if start < len(lines):
        chunks.append(_chunk(lines, start, len(lines), size))
    return chunks


def _chunk(lines: Sequence[bytes], start: int, end: int, size: int) -> NewChunk:
    return NewChunk(start, end - start, size, compress(lines[start:end]))


@dataclass(frozen=True, slots=True)
class Head:
    """A stream's head: how many records it has, and their stats."""

    next_index: int
    stats: Stats


@dataclass(frozen=True, slots=True)
class Appended:
    """What a write stored: where, and how many records the cap left out."""

    placement: Placement
    next_index: int


@dataclass(frozen=True, slots=True)
class StreamRef:
    """A stream: one kind of record of one job."""

    job: JobKey
    kind: Kind


def job_state(stream: StreamRef, row: Sequence[Any] | None, run: int | None) -> State | None:
    """The state of a stream's job from its row (state, running position) as read inside
    an append's transaction; raises Unauthorized when the write is for a run that is no
    longer the job's (`leases.run_refusal`)."""
    state = BY_NUMBER[row[0]] if row else None
    running_time = ts_of(row[1]) if row and row[1] is not None else None
    refusal = leases.run_refusal(stream.job, state, running_time, run)
    if refusal is not None:
        raise errors.Unauthorized(refusal)
    return state


class ChunkStore(abc.ABC):
    """Chunks of records and the heads of their streams."""

    @abc.abstractmethod
    async def append(
        self, stream: StreamRef, start: int | None, prepared: Prepared, admin: bool,
        cap: int | None, now_ms: int, run: int | None = None,
    ) -> Appended:
        """In one durable transaction: check the job (`job_state`: still the run `run`
        of a job token, when given; `records_data.place`: running, or any live state for
        an admin), skip the records already stored at their indexes, cut at `cap`, store
        the chunks and advance the head. Raises Unauthorized as `job_state` does and
        NotFound, Conflict, BadRequest as `place` does; nothing is stored then."""

    @abc.abstractmethod
    async def head(self, stream: StreamRef) -> Head | None:
        """The stream's head; None when nothing was ever written to it."""

    @abc.abstractmethod
    async def chunks(self, stream: StreamRef, from_index: int, limit: int) -> list[StoredChunk]:
        """Up to `limit` chunks in index order, the first being the one holding
        `from_index` (or the first after it)."""

    @abc.abstractmethod
    async def delete_chunks(self, job: JobKey, limit: int) -> int:
        """Delete up to `limit` chunks of a job (every kind); when none is left, its
        heads too. Returns how many chunks went: call again until 0."""

    @abc.abstractmethod
    async def orphaned(self, limit: int) -> list[JobKey]:
        """Jobs that have data but were deleted or removed (their data is to go)."""

    @abc.abstractmethod
    async def expired(self, project: int, finished_before_ms: int, limit: int) -> list[JobKey]:
        """Finished jobs of a project with data, finished before that time."""

    @abc.abstractmethod
    async def projects_with_data(self) -> list[int]:
        """Projects having any job data."""


def head_from_row(next_index: int, input_bytes: int, counts: Any) -> Head:
    return Head(next_index, Stats(next_index, input_bytes, dict(counts)))
