"""The bounded on-disk buffer between a job's pipe and the server.

Each stream (a job's items, logs or requests) appends records, one JSON line each, to
segment files of the job's directory and hands them out in batches by index; a batch the
server acknowledged is dropped, and a segment all of whose records were acknowledged is
deleted. The records not yet acknowledged, of all the worker's jobs together, are bounded
by a `Budget`: `append` blocks while it is spent, which blocks the reader of the job's
pipe, which blocks the job on its next write. Nothing is dropped; the job waits.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: a new segment file starts past this size (bytes)
SEGMENT_BYTES = 4 * 1024 * 1024


class Budget:
    """Bytes of records appended and not yet acknowledged, shared by a worker's streams."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, size: int) -> None:
        """Wait until `size` more bytes fit (a record larger than the whole budget waits
        for an empty budget, then goes alone)."""
        with self._cond:
            while self.used and self.used + size > self.limit:
                self._cond.wait()
            self.used += size

    def give_back(self, size: int) -> None:
        with self._cond:
            self.used -= size
            self._cond.notify_all()


@dataclass
class _Segment:
    path: Path
    first: int
    count: int = 0
    size: int = 0
    #: records and bytes from the start of the file already acknowledged
    acked: int = 0
    acked_bytes: int = 0
    writer: IO[bytes] | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    start: int
    lines: list[bytes]
    size: int


class Stream:
    """One kind of record of one job, numbered from 0 in the order they were appended."""

    def __init__(self, directory: Path, name: str, budget: Budget,
                 changed: threading.Event | None = None) -> None:
        self.directory = directory
        self.name = name
        self.budget = budget
        self.appended = 0
        self.acked = 0
        self._segments: deque[_Segment] = deque()
        self._lock = threading.Lock()
        #: set on each append (the uploader waits on it)
        self.changed = changed or threading.Event()

    @property
    def pending(self) -> int:
        return self.appended - self.acked

    def append(self, line: bytes) -> None:
        size = len(line) + 1
        self.budget.take(size)
        with self._lock:
            segment = self._segments[-1] if self._segments else None
            if segment is None or segment.size >= SEGMENT_BYTES:
                if segment is not None and segment.writer is not None:
                    segment.writer.close()
                    segment.writer = None
                path = self.directory / f"{self.name}.{self.appended}.jl"
                segment = _Segment(path, self.appended, writer=path.open("ab"))
                self._segments.append(segment)
            assert segment.writer is not None
            segment.writer.write(line + b"\n")
            segment.writer.flush()
            segment.count += 1
            segment.size += size
            self.appended += 1
        self.changed.set()

    def batch(self, max_records: int, max_bytes: int) -> Batch | None:
        """The oldest records not acknowledged yet, from one segment (None: nothing to send)."""
        with self._lock:
            if not self._segments:
                return None
            segment = self._segments[0]
            if segment.acked == segment.count:
                return None
            with segment.path.open("rb") as f:
                f.seek(segment.acked_bytes)
                data = f.read(min(max_bytes, segment.size - segment.acked_bytes))
            lines = data.split(b"\n")
            if len(lines) > 1:  # the last piece is cut at max_bytes or empty
                lines.pop()
            else:  # one record larger than max_bytes: it goes alone
                with segment.path.open("rb") as f:
                    f.seek(segment.acked_bytes)
                    lines = [f.readline().rstrip(b"\n")]
            lines = lines[: min(max_records, segment.count - segment.acked)]
            size = sum(len(line) + 1 for line in lines)
            return Batch(segment.first + segment.acked, lines, size)

    def ack(self, batch: Batch) -> None:
        with self._lock:
            segment = self._segments[0]
            assert segment.first + segment.acked == batch.start
            segment.acked += len(batch.lines)
            segment.acked_bytes += batch.size
            self.acked += len(batch.lines)
            if segment.acked == segment.count and (
                    len(self._segments) > 1 or segment.size >= SEGMENT_BYTES):
                if segment.writer is not None:
                    segment.writer.close()
                self._segments.popleft()
                segment.path.unlink(missing_ok=True)
        self.budget.give_back(batch.size)

    def close(self) -> None:
        with self._lock:
            for segment in self._segments:
                if segment.writer is not None:
                    segment.writer.close()
                    segment.writer = None
