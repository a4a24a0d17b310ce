"""Group commit for SQLite: one writer thread runs every write of the process.

Requests hand the writer a function of a connection. The writer takes all that are
waiting (up to `MAX_BATCH`), runs each inside its own SAVEPOINT of one transaction and
commits once: one fsync pays for the whole batch. A function that raises is rolled
back to its savepoint alone; the others still commit. Consecutive operations that carry
the same `merge_key` run as one call of their class's `run_many(conn, ops)`, e.g. many
single-job pushes as one multi-row insert. Each caller is answered only
after COMMIT returned, so an acknowledged write is on disk (`synchronous=FULL`).

Should the thread ever die (a failure outside a transaction, e.g. its connection gone),
the operations it held and every later one fail at once with `WriterStopped`, and
`check()` (hence `/readyz`) reports it: nothing waits for a thread that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    def __init__(self, connect: Callable[[], sqlite3.Connection],
                 name: str = "the database") -> None:
        self._connect = connect
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        #: a dying thread holds it while it collects the operations it must fail
        self._lock = threading.Lock()
        #: why the thread died (None while it runs)
        self._stopped: str | None = None
        #: the batch being committed, answered by `_die` if the thread dies meanwhile
        self._inflight: list[Any] = []
        #: why the file is damaged, once an operation found it so (`SqliteStorage.ping`)
        self.corrupt: str | None = None
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        conn = self._conn = self._connect()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="jobq-sqlite-writer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def check(self) -> None:
        """Raise `WriterStopped` if the writer thread died."""
        if self._stopped is not None:
            raise errors.WriterStopped(self._stopped)

    def break_connection(self) -> None:
        """Fault hook for tests: close the writer's connection under it, as if its file
        handle were lost. The next batch fails and the thread dies."""
        if self._conn is not None:
            self._conn.close()

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Hand `op` to the writer: the future is answered once its batch committed. One
        put, no lock: a thread that dies sets `_stopped` before it answers what is in the
        queue, so an operation put after that is answered here, at once."""
        if self._thread is None:
            self.check()
            raise errors.StorageUnavailable("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, loop, future))
        if self._stopped is not None:
            future.set_exception(errors.WriterStopped(self._stopped))
        return future

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
                self._inflight = batch
                self._commit_batch(conn, batch)
                self._inflight = []
                if stopping:
                    return
        except BaseException as exc:
            self._die(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _die(self, exc: BaseException) -> None:
        log.critical("the SQLite writer of %s stopped", self._name, exc_info=exc)
        with self._lock:
            self._stopped = (f"the database writer of {self._name} stopped ({exc}):"
                             " restart jobq")
            waiting = [item for item in self._inflight if item is not _STOP]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    waiting.append(item)
        failure = errors.WriterStopped(self._stopped)
        _answer([(item, (False, failure)) for item in waiting])

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for group in _mergeable_runs([op for op, _, _ in batch]):
                outcomes += _run_group(conn, group, self._name)
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("group commit of %d operations failed", len(batch))
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            failure = translate(exc, self._name)
            outcomes = [(False, failure)] * len(batch)
        self.batches += 1
        self.operations += len(batch)
        if damaged := [v for ok, v in outcomes if not ok and isinstance(v, errors.StorageCorrupt)]:
            self.corrupt = damaged[0].message
        _answer(list(zip(batch, outcomes, strict=True)))


def _answer(answered: list[tuple[Any, tuple[bool, Any]]]) -> None:
    """Resolve each (op, loop, future) item with its outcome: one wake-up of each loop."""
    answers: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
    for (_, loop, future), (ok, value) in answered:
        answers.setdefault(loop, []).append((future, ok, value))
    for loop, items in answers.items():
        # a loop closed meanwhile has nobody waiting; the writer must go on for the others
        with contextlib.suppress(RuntimeError):
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


def _run_one(conn: sqlite3.Connection, op: Any, name: str) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT op")
    try:
        return True, op(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO op")
        return False, translate(exc, name)
    finally:
        conn.execute("RELEASE op")


def _run_group(
    conn: sqlite3.Connection, group: list[Any], name: str
) -> list[tuple[bool, Any]]:
    """Run operations; several alike (e.g. single-job pushes to one project) as one call of
    their `run_many`, which saves statements per request. If that fails, each runs alone,
    so one bad request still fails alone."""
    if len(group) > 1:
        ok, results = _run_one(conn, lambda c: type(group[0]).run_many(c, group), name)
        if ok:
            return [(True, result) for result in results]
    return [_run_one(conn, op, name) for op in group]


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # cancelled, or already answered by `_die`
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


#: primary result codes (the low byte of an extended code) of a database that may work
#: again by itself: locked by another process, a full disk, an I/O error, read-only
_UNAVAILABLE = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
})
#: a damaged file: retrying cannot help, only a backup can
_CORRUPT = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def translate(exc: BaseException, name: str = "the database") -> BaseException:
    """A sqlite3 error as a jobq error, classified by its result code (`name`, the file,
    goes into the message of a damaged database); any other exception as it is."""
    if isinstance(exc, errors.JobqError) or not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    failure: errors.JobqError
    if code is not None and (code & 0xFF in _CORRUPT or code == sqlite3.SQLITE_IOERR_CORRUPTFS):
        failure = errors.StorageCorrupt(
            f"{name} is damaged ({text}): restore it from a backup")
    elif code is not None and code & 0xFF in _UNAVAILABLE:
        failure = errors.StorageUnavailable(f"database unavailable: {text}")
    else:
        failure = errors.StorageError(f"database error: {text}")
    failure.__cause__ = exc
    return failure
