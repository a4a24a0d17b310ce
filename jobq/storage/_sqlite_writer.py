"""Group commit for SQLite: one writer thread runs every write of the process.

Requests hand the writer a function of a connection. The writer takes all that are
waiting (up to `MAX_BATCH`), runs each inside its own SAVEPOINT of one transaction and
commits once: one fsync pays for the whole batch. A function that raises is rolled
back to its savepoint alone; the others still commit. Consecutive operations that carry
the same `merge_key` run as one call of their class's `run_many(conn, ops)`, e.g. many
single-job pushes as one multi-row insert. Each caller is answered only
after COMMIT returned, so an acknowledged write is on disk (`synchronous=FULL`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from jobq import errors

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]

#: most operations committed by one transaction
MAX_BATCH = 512

_STOP = object()


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        conn = self._connect()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="jobq-sqlite-writer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def submit(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            raise errors.StorageUnavailable("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, loop, future))
        return await future

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stopping = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._commit_batch(conn, batch)
                if stopping:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for group in _mergeable_runs([op for op, _, _ in batch]):
                outcomes += _run_group(conn, group)
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("group commit of %d operations failed", len(batch))
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            failure = translate(exc)
            outcomes = [(False, failure)] * len(batch)
        self.batches += 1
        self.operations += len(batch)
        answers: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
        for (_, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            answers.setdefault(loop, []).append((future, ok, value))
        for loop, items in answers.items():  # one wake-up of each loop a batch
            loop.call_soon_threadsafe(_resolve, items)


def _mergeable_runs(ops: list[Any]) -> list[list[Any]]:
    """Consecutive operations with the same `merge_key` (see `_run_group`) go together."""
    runs: list[list[Any]] = []
    for op in ops:
        key = getattr(op, "merge_key", None)
        if runs and key is not None and getattr(runs[-1][0], "merge_key", None) == key:
            runs[-1].append(op)
        else:
            runs.append([op])
    return runs


def _run_one(conn: sqlite3.Connection, op: Any) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT op")
    try:
        return True, op(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO op")
        return False, translate(exc)
    finally:
        conn.execute("RELEASE op")


def _run_group(conn: sqlite3.Connection, group: list[Any]) -> list[tuple[bool, Any]]:
    """Run operations; several alike (e.g. single-job pushes to one project) as one call of
    their `run_many`, which saves statements per request. If that fails, each runs alone,
    so one bad request still fails alone."""
    if len(group) > 1:
        ok, results = _run_one(conn, lambda c: type(group[0]).run_many(c, group))
        if ok:
            return [(True, result) for result in results]
    return [_run_one(conn, op) for op in group]


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def translate(exc: BaseException) -> BaseException:
    if isinstance(exc, errors.JobqError) or not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("disk", "full", "readonly", "locked", "unable to open", "I/O")
    ):
        failure: errors.JobqError = errors.StorageUnavailable(f"database unavailable: {text}")
    else:
        failure = errors.StorageError(f"database error: {text}")
    failure.__cause__ = exc
    return failure
