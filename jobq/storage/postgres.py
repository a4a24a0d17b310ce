"""The shared backend: PostgreSQL through psycopg 3 (async) and a connection pool, for
many `jobq serve` nodes behind a load balancer on one database.

## Queue positions across nodes (exact incremental sync)

`list?stop=KEY` returns the jobs whose position is above KEY's (see `jobq.domain.jobs`).
It is exact only if positions become visible in position order: were a transaction to
take position 100 and commit after another one took 101 and committed, a consumer could
read 101, move its cursor past 100 and never see it. So positions are handed out under a
per-project lock held until commit:

* every write transaction of a project first locks the project's row
  (`INSERT INTO projects ... ON CONFLICT DO UPDATE ... RETURNING last_position`, or
  `SELECT ... FOR UPDATE` for writes that must not create the project), reads
  `last_position`, hands out `next_position(last, now)` for each state change, stores the
  last one, and commits, which releases the lock;
* a second transaction of the project, on any node, waits on that row lock. PostgreSQL
  releases row locks only after the commit is visible to new snapshots, so when the
  second one reads `last_position` the first is committed and visible, and the second's
  positions are all higher. Positions of a project are therefore in commit order *and*
  in visibility order: a snapshot that sees position p sees every position below p;
* `list` is one statement (one snapshot). Whatever it returns above the cursor, every
  lower position it could ever return is already in it, so a consumer that keeps the
  newest key it saw misses nothing and sees nothing twice, whichever node it asks.

Reads take no lock. Different projects never wait for each other.

## Late locking (leased startjob, update by job keys)

The project lock serializes every write of a project on every node, so what counts is
how long it is held. Taken first, it would be held across every round trip of the
transaction, and each of those needs the node's Python process to wake up and run
(milliseconds on a loaded machine). So the hot writes, `start_job` and `update` whose
targets are all job keys, take it last, and hold it only while the server runs the
final pipelined round trip (`_transaction_late`):

1. one round trip: BEGIN; lock (and read) the jobs the updates name, `FOR UPDATE`,
   in key order; lock the project's capped botgroups `FOR UPDATE` in name order; the
   first claim (`FOR UPDATE SKIP LOCKED`). Each further claim of the batch is one more
   round trip. None of this holds the project lock; the jobs read are locked, so they
   stay as read until commit.
2. Python works out every write; a position is only an offset into the batch's range
   (the stored metadata never contains a time: times derive from the position columns).
   Later operations of the batch see the earlier ones' writes through an overlay (the
   claim excludes the jobs the batch already moved and counts its own change of running
   jobs against `max_running`).
3. one round trip: lock the project row and take n positions at once
   (`advance_positions`: the first is `next_position(last, now)`, the others follow it,
   exactly what n calls of `next_position` give), the writes (each position counted back
   from the new `last_position`), COMMIT.

Positions are still handed out under the project row lock and held until COMMIT, so
everything said above about commit and visibility order holds unchanged. What moves is
the point at which the claim chooses its job: before the project lock, not after it. So
a job pushed (and committed) between a claim's choice and its commit can have a lower
position than the claim although the claim did not see it; as with SKIP LOCKED, "the
next pending job" is the next one at the moment of the choice.

Lock order, the same for every transaction: job rows (by key, or skipped when locked),
then botgroups (by name), then the project row. A late batch waits for the project row
only in its last round trip, while the holder of the row runs its own last round trip,
which waits for nothing. The other writes (push, update by spider, cancel, metadata,
remove, settings) still lock the project row first, so they must not wait for a job row
a late batch holds: they lock job rows `FOR UPDATE NOWAIT`, and a batch that finds one
busy is rolled back and replayed shortly after (`BUSY_RETRIES`). So deadlocks still
cannot form; a deadlock or serialization failure would replay the batch anyway.

A late batch sends its writes and COMMIT together, so an error there cannot be told to
one operation: the batch is rolled back and its operations run again one by one.

## One round trip (startjob, an update of one job to a state, a cancel of one job)

A worker's cycle, startjob then the update that finishes its job, needs no Python between
reading the job and writing it: what a claim or an update writes into a job's metadata
is a patch that does not depend on the job (`changes.claim_patch`, `update_patch`), and
which moves are allowed is a list of states (`jobs.sources`). So each is one statement
(`claim_one`, `update_one`: a data-modifying CTE) and a batch of them is one round trip
(`_transaction_one`): BEGIN; lock the jobs the updates name, in key order; lock the
capped botgroups; each statement, which takes the project row and its next position only
when it moves a job; COMMIT. The project row is held from the first move to COMMIT,
while the server runs the rest of that pipeline, as in a late batch's last round trip;
the lock order is the same (job rows, botgroups, project row). Each statement sees the
earlier ones of its batch, so there is no overlay. An update the rules refuse wrote
nothing (its statement returns the state it found): it answers Conflict alone, and the
others of the batch commit. Leased claims and updates of several lines, of a spider or
without a state stay late-locking batches. The cancel of one job named by its key is
`update_one` moving it to finished from pending only (`cancel_one`); a running job it
leaves as it was, and the usual cancel then records the request.

A one-trip operation alone in its batch (the usual case with several nodes: each node's
batches are small) is its statement alone, in autocommit: no BEGIN, COMMIT or pipeline,
so the project row is held from the move to the commit, never while the server waits
for this process to send COMMIT. `update_one` locks its job first (`FOR UPDATE` in the
CTE every other one reads), so the lock order holds. A claim needs its project's capped
botgroups locked by an earlier statement (the count of running jobs must be read after
the locks), so alone it claims only when there is none, and otherwise runs as a batch.

## startjob

Under the locks of the project's capped botgroups (taken `FOR UPDATE` sorted by name,
so a botgroup's `max_running` holds exactly across nodes and projects), one statement
picks the next pending job, highest priority then oldest, `FOR UPDATE SKIP LOCKED`, and
checks the botgroup and capacity, and moves it to running. A job is claimed by one
transaction only.

## Faults

psycopg errors are translated at this boundary: a connection problem, a pool timeout or
an operator intervention become `StorageUnavailable` (HTTP 503), anything else
`StorageError` (also 503). Getting a connection waits at most `timeout` seconds; a
broken connection is dropped by the pool, the idle ones are checked, and the request is
retried once on a fresh one; when the database comes back the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jobq import errors
from jobq.domain import changes, jobs
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.jobs import JobKey, State
from jobq.domain.leases import JobAnswer, Lease, LostPolicy, NewLease, Stop, Timeouts, Worker
from jobq.domain.records import (
    ApiKey,
    Cancelled,
    JobRecord,
    JobUpdate,
    ListQuery,
    NewJob,
    Pushed,
    StartRequest,
    Updated,
)
from jobq.domain.schedules import Schedule, ScheduleSpec
from jobq.storage import _pg_read as read
from jobq.storage import _pg_schedules as sched
from jobq.storage import _pg_schema
from jobq.storage import _pg_tx as tx
from jobq.storage import _pg_workers as pg_workers
from jobq.storage._pg_batch import GroupCommit, Op
from jobq.storage._pg_sql import Q
from jobq.storage.base import UNITS_CAP, Storage
from jobq.storage.chunks import ChunkStore

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds to wait for a pooled connection (then 503) and to connect
DEFAULT_TIMEOUT = 5.0
#: seconds to wait for a connection while the database is known to be out of reach
DOWN_TIMEOUT = 1.0
#: how many times a request is retried on a fresh connection after a broken one
BROKEN_RETRIES = 2
#: how many times a batch is replayed after a deadlock or serialization failure
CONFLICT_RETRIES = 5
#: how many times a batch is replayed when a job row it must lock is held by a
#: late-locking batch (`FOR UPDATE NOWAIT`; such a hold lasts a few round trips)
BUSY_RETRIES = 300
#: errors that roll a batch back to be run again
_REPLAYED = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure,
             pg_errors.LockNotAvailable)
#: session settings of every connection
SESSION_OPTIONS = {
    # a node that vanished mid-transaction must not hold a project's lock for long
    "idle_in_transaction_session_timeout": "30s",
    # a lock wait that long means trouble: answer 503 rather than hang
    "lock_timeout": "15s",
    # jobq's tables live in a schema of their own (see `_pg_schema`)
    "search_path": _pg_schema.SCHEMA,
}


class _Broken(Exception):
    """The connection broke before anything was committed: retry on another one."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Replay(Exception):
    """Deadlock, serialization failure or a busy job row: the transaction was rolled back;
    run it again."""

    def __init__(self, text: str, busy: bool) -> None:
        super().__init__(text)
        self.busy = busy


class _Split(Exception):
    """A batch failed where the failure cannot be told to one operation (a late-locking
    batch's final round trip, pushes run together): it was rolled back; run its
    operations one by one."""


@dataclass(slots=True)
class _Refused:
    """The answer of a one-trip operation that a rule refused (nothing was written)."""

    error: BaseException


async def _one_trip_only(tx_: tx.Tx) -> Any:  # pragma: no cover - never called
    raise AssertionError("a one-trip operation runs as its statement")


class _OpFailed(Exception):
    def __init__(self, op: Op, error: BaseException) -> None:
        super().__init__(str(error))
        self.op = op
        self.error = error


def translate(exc: BaseException) -> BaseException:
    """A psycopg error as a jobq error; any other exception as it is."""
    if isinstance(exc, errors.JobqError) or not isinstance(exc, psycopg.Error):
        return exc
    text = str(exc).strip() or type(exc).__name__
    failure: errors.JobqError
    if isinstance(exc, psycopg.OperationalError | pg_errors.ReadOnlySqlTransaction):
        failure = errors.StorageUnavailable(f"database unavailable: {text}")
    else:
        failure = errors.StorageError(f"database error: {text}")
    failure.__cause__ = exc
    return failure


def _is_broken(conn: AsyncConnection[Any], exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError) and (conn.broken or conn.closed)


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "the database"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"postgresql://{host}:{port}/{parts.get('dbname', '')}"


class PostgresStorage(Storage):
    """Jobs in the PostgreSQL database at `url`, through `pool_size` connections."""

    def __init__(
        self, url: str, pool_size: int = 10, timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = SYSTEM,
    ) -> None:
        if pool_size < 1:
            raise errors.JobqError("pool_size must be at least 1")
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        #: the time positions and key dates are taken from (a ManualClock in tests)
        self._clock = clock
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._writer = GroupCommit(self._run_batch, max_concurrent=max(1, pool_size // 2))
        #: committed spider ids by project and name (spiders are never renamed or removed)
        self._spiders: dict[int, dict[str, int]] = {}
        self._checking: asyncio.Task[None] | None = None
        #: set when getting a connection timed out, cleared by the next success: while
        #: the database is out of reach requests wait DOWN_TIMEOUT, not `timeout`
        self._down = False

    def _now_ms(self) -> int:
        return self._clock.now_ms()

    # -- lifecycle -------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        options = " ".join(f"-c {k}={v}" for k, v in SESSION_OPTIONS.items())
        return {
            "autocommit": True,
            "connect_timeout": max(1, round(self.timeout)),
            "application_name": "jobq",
            "options": options,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }

    async def open(self) -> None:
        await self.migrate()
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            self.url,
            kwargs=self._connect_kwargs(),
            min_size=min(2, self.pool_size),
            max_size=self.pool_size,
            open=False,
            timeout=self.timeout,
            name="jobq",
            reconnect_timeout=24 * 3600.0,  # keep trying: the database may come back
        )
        try:
            await pool.open(wait=True, timeout=self.timeout * 2)
        except psycopg.Error as exc:
            await pool.close()
            raise errors.StorageUnavailable(
                f"database unavailable: cannot connect to {describe(self.url)}: {exc}"
            ) from exc
        self._pool = pool

    async def prepare(self) -> int:
        return await self.migrate()

    async def migrate(self) -> int:
        """Check the database and create the schema or apply the migrations it lacks
        (see `_pg_schema`), under an advisory lock so that nodes starting together do it
        once; returns the schema version."""
        try:
            conn = await AsyncConnection.connect(self.url, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise errors.StorageUnavailable(
                f"database unavailable: cannot connect to {describe(self.url)}: {exc}"
            ) from exc
        try:
            async with conn.transaction():
                return await _pg_schema.migrate(conn, describe(self.url))
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        await self._writer.close()
        if self._checking is not None:
            await asyncio.gather(self._checking, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1"))

    # -- plumbing ----------------------------------------------------------------------

    async def _on_broken(self) -> None:
        """Drop the other broken idle connections (after a database restart all are)."""
        if self._pool is not None and (self._checking is None or self._checking.done()):
            self._checking = asyncio.create_task(self._pool.check())
        if self._checking is not None:
            await asyncio.wait([self._checking], timeout=self.timeout)

    async def _run(
        self, fn: Callable[[AsyncConnection[Any]], Awaitable[T]], retry: bool = True
    ) -> T:
        """fn on a pooled connection; retried on a fresh connection if the one it got is
        broken (fn must be safe to retry then: a read, or a transaction not committed)."""
        pool = self._pool
        if pool is None:
            raise errors.StorageUnavailable("the database is closed")
        attempt = 0
        while True:
            try:
                wait = min(DOWN_TIMEOUT, self.timeout) if self._down else self.timeout
                async with pool.connection(timeout=wait) as conn:
                    self._down = False
                    try:
                        return await fn(conn)
                    except psycopg.Error as exc:
                        if _is_broken(conn, exc):
                            raise _Broken(exc) from exc
                        raise
            except _Broken as broken:
                attempt += 1
                if not retry or attempt > BROKEN_RETRIES:
                    raise translate(broken.cause) from broken.cause
                log.warning("database connection broken (%s): retrying", broken.cause)
                await self._on_broken()
            except PoolTimeout as exc:
                self._down = True
                raise errors.StorageUnavailable(
                    f"database unavailable: no connection to {describe(self.url)} within"
                    f" {wait:g} s (is PostgreSQL up and reachable?)"
                ) from exc
            except psycopg.Error as exc:
                raise translate(exc) from exc

    async def _read(self, fn: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        return await self._run(fn)

    async def _fetchall(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async def run(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

        return await self._read(run)

    async def _fetchone(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        async def run(conn: AsyncConnection[Any]) -> tuple[Any, ...] | None:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()

        return await self._read(run)

    async def _write(
        self,
        project: int,
        fn: Callable[[tx.Tx], Awaitable[T]],
        ensure_project: bool = True,
        claims: bool = False,
        late: bool = False,
        keys: tuple[tuple[int, int], ...] = (),
    ) -> T:
        op = Op(fn, ensure_project=ensure_project, claims=claims, late=late, keys=keys)
        result: T = await self._writer.submit(project, op)
        return result

    async def _write_one(self, project: int, trip: tx.OneTrip, claims: bool = False) -> Any:
        op = Op(_one_trip_only, ensure_project=False, claims=claims, one=trip,
                keys=() if trip.key is None else (trip.key,))
        return await self._writer.submit(project, op)

    async def _run_batch(self, project: int, ops: list[Op]) -> None:
        """Run ops in one transaction (see the module docstring) and answer each."""
        remaining = list(ops)
        replays = busy = 0
        run = (self._transaction, self._transaction_late, self._transaction_one)[ops[0].kind]
        while remaining:
            try:
                results, new_spiders = await self._run(functools.partial(
                    run, project, remaining))
            except _OpFailed as failed:
                failed.op.resolve(False, failed.error)
                remaining.remove(failed.op)
                continue
            except _Split:
                for op in remaining:
                    await self._run_batch(project, [op])
                return
            except _Replay as exc:
                if exc.busy:
                    busy += 1
                    if busy <= BUSY_RETRIES:
                        await asyncio.sleep(0.001 * min(busy, 10))
                        continue
                else:
                    replays += 1
                    if replays <= CONFLICT_RETRIES:
                        await asyncio.sleep(0.001 * replays)
                        continue
                failure = translate(exc.__cause__ or exc)
                for op in remaining:
                    op.resolve(False, failure)
                return
            except Exception as exc:
                failure = translate(exc)
                for op in remaining:
                    op.resolve(False, failure)
                return
            if new_spiders:
                self._spiders.setdefault(project, {}).update(new_spiders)
            for op, result in zip(remaining, results, strict=True):
                if isinstance(result, _Refused):
                    op.resolve(False, result.error)
                else:
                    op.resolve(True, result)
            return

    async def _transaction(
        self, project: int, ops: list[Op], conn: AsyncConnection[Any]
    ) -> tuple[list[Any], dict[str, int]]:
        try:
            # BEGIN and the locks in one round trip (pipeline mode). Always the upsert: a
            # plain SELECT ... FOR UPDATE finds no row while the project's first push is
            # still committing, yet a later statement of this transaction (READ COMMITTED)
            # may see that push's jobs and need a position.
            async with conn.pipeline():
                await conn.execute("BEGIN")
                cursor = await conn.execute(Q.lock_project_ensure, {"project": project})
                if any(op.claims for op in ops):
                    await conn.execute(Q.lock_botgroups, {"project": project})
            row = await cursor.fetchone()
            last = int(row[0]) if row is not None else None
            tx_ = tx.Tx(conn, project, self._now_ms(), last, self._spiders.get(project, {}))
            results = await self._run_ops(conn, tx_, ops)
        except BaseException as exc:
            await self._abort(conn, exc)
            raise
        try:
            # the last position and COMMIT in one round trip
            async with conn.pipeline():
                if tx_.last != last:
                    await conn.execute(
                        Q.save_position, {"project": project, "position": tx_.last}
                    )
                await conn.execute("COMMIT")
        except psycopg.Error as exc:
            await self._commit_failed(conn, exc)
            raise
        return results, tx_.new_spiders

    @staticmethod
    async def _run_ops(conn: AsyncConnection[Any], tx_: tx.Tx, ops: list[Op]) -> list[Any]:
        results: list[Any] = []
        i = 0
        while i < len(ops):
            op, end = ops[i], i + 1
            while op.many is not None and end < len(ops) and ops[end].many is op.many:
                end += 1
            try:
                if end - i > 1:
                    assert op.many is not None
                    results += await op.many(tx_, [o.args for o in ops[i:end]])
                else:
                    results.append(await op.fn(tx_))
            except _REPLAYED:
                raise
            except Exception as exc:
                if _is_broken(conn, exc):
                    raise
                if end - i > 1:  # whose fault is it? each of them runs alone
                    raise _Split(str(exc)) from exc
                raise _OpFailed(op, translate(exc)) from exc
            i = end
        return results

    async def _transaction_late(
        self, project: int, ops: list[Op], conn: AsyncConnection[Any]
    ) -> tuple[list[Any], dict[str, int]]:
        """A late-locking batch (see the module docstring): lock and read the jobs, work
        out every write, then lock the project row, take the positions, write and
        commit in one round trip."""
        tx_ = tx.Tx(conn, project, self._now_ms(), None, self._spiders.get(project, {}),
                    late=True)
        keys = sorted({key for op in ops for key in op.keys})
        try:
            # BEGIN, the job locks and the first operation's read in one round trip
            async with conn.pipeline():
                await conn.execute("BEGIN")
                if keys:
                    tx_.locking = await conn.execute(Q.lock_jobs, {
                        "project": project, "spiders": [k[0] for k in keys],
                        "jobs": [k[1] for k in keys]})
                if any(op.claims for op in ops):
                    await conn.execute(Q.lock_botgroups, {"project": project})
                results = await self._run_ops(conn, tx_, ops)
        except BaseException as exc:
            await self._abort(conn, exc)
            raise
        n = tx_.taken
        ensure = any(op.ensure_project for op in ops)
        try:
            # the project lock, the positions, every write and COMMIT in one round trip:
            # the project row is locked only while the server runs them
            async with conn.pipeline():
                cursor = None
                if ensure or n:
                    cursor = await conn.execute(
                        Q.advance_positions_ensure if ensure else Q.advance_positions,
                        {"project": project, "n": n, "floor": jobs.position_floor(tx_.now_ms)},
                    )
                for sql, params, offset in tx_.writes:
                    params["back"] = None if offset is None else n - 1 - offset
                    await conn.execute(sql, params)
                await conn.execute("COMMIT")
            row = await cursor.fetchone() if cursor is not None else None
        except psycopg.Error as exc:
            await self._batch_failed(conn, exc, ops)
        first = int(row[0]) if row is not None else 0
        return [r.make(first) if isinstance(r, tx.Later) else r for r in results], {}

    async def _transaction_one(
        self, project: int, ops: list[Op], conn: AsyncConnection[Any]
    ) -> tuple[list[Any], dict[str, int]]:
        """A one-trip batch (see the module docstring): BEGIN, the locks, each operation's
        statement and COMMIT, in one round trip."""
        floor = jobs.position_floor(self._now_ms())
        if len(ops) == 1:
            alone = await self._statement_alone(project, ops[0], floor, conn)
            if alone is not None:
                return alone, {}
        keys = sorted({key for op in ops for key in op.keys})
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                if keys:
                    await conn.execute(Q.lock_jobs, {
                        "project": project, "spiders": [k[0] for k in keys],
                        "jobs": [k[1] for k in keys]})
                if any(op.claims for op in ops):
                    await conn.execute(Q.lock_botgroups, {"project": project})
                cursors = [await conn.execute(
                    op.one.sql, {**op.one.params, "project": project, "floor": floor})
                    for op in ops]
                await conn.execute("COMMIT")
            rows = [await cursor.fetchone() for cursor in cursors]
        except psycopg.Error as exc:
            await self._batch_failed(conn, exc, ops)
        results: list[Any] = []
        for op, row in zip(ops, rows, strict=True):
            try:
                results.append(op.one.answer(row))
            except errors.JobqError as exc:  # refused by a rule: it wrote nothing
                results.append(_Refused(exc))
        return results, {}

    async def _statement_alone(
        self, project: int, op: Op, floor: int, conn: AsyncConnection[Any]
    ) -> list[Any] | None:
        """A one-trip operation with no other in its batch: its statement alone, in
        autocommit (its own transaction: no BEGIN, no COMMIT, no pipeline), so the project
        row is held from the statement's move to its commit, never while the server waits
        for this process. None: a claim whose project has a capped botgroup (it must lock
        the botgroups first, in a transaction)."""
        try:
            cursor = await conn.execute(
                op.one.sql, {**op.one.params, "project": project, "floor": floor, "alone": True})
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            await self._batch_failed(conn, exc, [op])
        try:
            return [op.one.answer(row)]
        except tx.LocksNeeded:
            return None
        except errors.JobqError as exc:  # refused by a rule: it wrote nothing
            return [_Refused(exc)]

    @classmethod
    async def _abort(cls, conn: AsyncConnection[Any], exc: BaseException) -> None:
        """Roll back a transaction that failed before its COMMIT; lock conflicts and
        deadlocks become a `_Replay` of the batch."""
        await cls._rollback(conn)
        if isinstance(exc, _REPLAYED):
            raise _Replay(str(exc), isinstance(exc, pg_errors.LockNotAvailable)) from exc

    @classmethod
    async def _batch_failed(
        cls, conn: AsyncConnection[Any], exc: psycopg.Error, ops: list[Op]
    ) -> NoReturn:
        """A late-locking or one-trip batch failed: replay it (lock timeouts, serialization
        failures), split it so that each operation meets its own fate, or fail its one
        operation with the translated error."""
        await cls._commit_failed(conn, exc)
        if isinstance(exc, _REPLAYED):
            raise _Replay(str(exc), isinstance(exc, pg_errors.LockNotAvailable)) from exc
        if len(ops) > 1:
            raise _Split(str(exc)) from exc
        raise _OpFailed(ops[0], translate(exc)) from exc

    @classmethod
    async def _commit_failed(cls, conn: AsyncConnection[Any], exc: psycopg.Error) -> None:
        """A failure in the round trip that ends with COMMIT: with the connection gone the
        commit may or may not have happened, so it is never retried (503); otherwise the
        transaction is rolled back for the caller to replay or fail."""
        if conn.broken or conn.closed:
            raise errors.StorageUnavailable(
                f"database unavailable: the outcome of the commit is unknown: {exc}"
            ) from exc
        await cls._rollback(conn)

    @staticmethod
    async def _rollback(conn: AsyncConnection[Any]) -> None:
        if conn.broken or conn.closed:
            return
        try:
            await conn.execute("ROLLBACK")
        except psycopg.Error:
            log.exception("rollback failed")

    # -- jobs: writes ------------------------------------------------------------------

    async def push(self, project: int, jobs: Sequence[NewJob], actor: str) -> list[Pushed]:
        op = Op(functools.partial(tx.push, new_jobs=jobs, actor=actor), many=tx.push_many,
                args=(jobs, actor))
        result: list[Pushed] = await self._writer.submit(project, op)
        return result

    async def start_job(
        self, project: int, request: StartRequest, actor: str
    ) -> tuple[JobKey, dict[str, Any]] | None:
        if not changes.keeps_counters(request.params):
            # the counters column is computed from the whole metadata: read it first
            claim: Callable[[tx.Tx], Awaitable[Any]] = functools.partial(
                tx.start_job, request=request, actor=actor)
            late: tuple[JobKey, dict[str, Any]] | None = await self._write(
                project, claim, ensure_project=False, claims=True, late=True)
            return late
        claimed: tuple[JobKey, dict[str, Any]] | None = await self._write_one(
            project, tx.claim_one(project, request, self._now_ms(), actor), claims=True)
        return claimed

    async def update(
        self, project: int, updates: Sequence[JobUpdate], actor: str
    ) -> list[Updated]:
        keys = [u.target for u in updates]
        if (len(updates) == 1 and isinstance(keys[0], JobKey) and keys[0].project == project
                and updates[0].state is not None and changes.keeps_counters(updates[0].fields)):
            # a worker's finish (or any move of one job): one statement
            done: list[Updated] = await self._write_one(
                project, tx.update_one(project, updates[0], self._now_ms(), actor))
            return done
        late = all(isinstance(k, JobKey) and k.project == project for k in keys)
        return await self._write(
            project, functools.partial(tx.update, updates=updates, actor=actor), late=late,
            keys=tuple((k.spider, k.job) for k in keys if isinstance(k, JobKey)) if late else (),
        )

    async def cancel(
        self, project: int, keys: Sequence[JobKey] | None, limit: int | None, actor: str
    ) -> Cancelled:
        if keys is not None and len(keys) == 1 and keys[0].project == project:
            # a pending job (the usual cancel): one statement
            done: Cancelled | None = await self._write_one(
                project, tx.cancel_one(keys[0], self._now_ms(), actor))
            if done is not None:
                return done
        return await self._write(
            project, functools.partial(tx.cancel, keys=keys, limit=limit, actor=actor)
        )

    async def set_job_meta(self, key: JobKey, fields: dict[str, Any]) -> bool:
        return await self._write(
            key.project, functools.partial(tx.set_job_meta, key=key, fields=fields),
            ensure_project=False,
        )

    async def delete_job_meta_field(self, key: JobKey, name: str) -> bool:
        return await self._write(
            key.project, functools.partial(tx.delete_job_meta_field, key=key, name=name),
            ensure_project=False,
        )

    async def remove_job(self, key: JobKey) -> bool:
        return await self._write(
            key.project, functools.partial(tx.remove_job, key=key), ensure_project=False
        )

    # -- jobs: reads -------------------------------------------------------------------

    async def get_job_meta(self, key: JobKey) -> dict[str, Any] | None:
        row = await self._fetchone(
            Q.job_record, {"project": key.project, "spider": key.spider, "job": key.job}
        )
        return read.record(key.project, row, with_meta=True).meta if row else None

    async def list_jobs(self, project: int, query: ListQuery) -> list[JobRecord]:
        built = read.list_sql(project, query)
        if built is None:
            return []
        rows = await self._fetchall(*built)
        return [read.record(project, row, query.with_meta) for row in rows]

    async def list_text(self, project: int, query: ListQuery, now: int) -> str:
        built = read.list_text_sql(project, query, now)
        if built is None:
            return ""
        row = await self._fetchone(*built)
        return str(row[0]) if row and row[0] is not None else ""

    async def count_jobs(self, project: int, query: ListQuery) -> int:
        built = read.count_sql(project, query)
        if built is None:
            counts = await self._state_counts(project, query.spiders)
            return sum(counts.get(s, 0) for s in query.states)
        row = await self._fetchone(*built)
        return int(row[0]) if row else 0

    async def _state_counts(
        self, project: int, spiders: Sequence[int] | None
    ) -> dict[State, int]:
        if spiders is not None and not spiders:
            return {}
        rows = await self._fetchall(*read.state_counts_sql(project, spiders))
        return {State(s): int(n) for s, n in rows}

    async def state_counts(self, project: int, spider: int | None = None) -> dict[State, int]:
        return await self._state_counts(project, None if spider is None else (spider,))

    async def stop_position(self, key: JobKey, states: Sequence[State]) -> int | None:
        row = await self._fetchone(
            Q.job_positions, {"project": key.project, "spider": key.spider, "job": key.job}
        )
        return read.stop_position(row, states)

    async def last_jobs(self, project: int, spider: int | None) -> list[JobRecord]:
        rows = await self._fetchall(Q.last_jobs, {"project": project, "spider": spider})
        return [read.record(project, row, with_meta=True) for row in rows]

    async def projects(self) -> list[int]:
        return [int(r[0]) for r in await self._fetchall(Q.projects)]

    # -- spiders, settings, botgroups -----------------------------------------------------

    async def spider_id(self, project: int, name: str, create: bool) -> int | None:
        known = self._spiders.get(project, {}).get(name)
        if known is not None:
            return known
        row = await self._fetchone(Q.spider_by_name, {"project": project, "name": name})
        if row is not None:
            self._spiders.setdefault(project, {})[name] = int(row[0])
            return int(row[0])
        if not create:
            return None
        return await self._write(
            project, functools.partial(tx.spider_id, name=name, create=True)
        )

    async def spider_names(self, project: int, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await self._fetchall(Q.spider_names, {"project": project, "ids": list(ids)})
        return {int(sid): name for sid, name in rows}

    async def get_settings(self, project: int) -> dict[str, Any]:
        row = await self._fetchone(Q.settings, {"project": project})
        return orjson.loads(row[0]) if row else {}

    async def update_settings(
        self, project: int, fields: dict[str, Any], remove: Sequence[str] = ()
    ) -> None:
        await self._write(
            project, functools.partial(tx.update_settings, fields=fields, remove=remove)
        )

    async def _execute(self, sql: str, params: Any, retry: bool = True) -> int:
        """One statement in its own (autocommit) transaction; returns its row count."""

        async def run(conn: AsyncConnection[Any]) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._run(run, retry=retry)

    async def set_max_running(self, botgroup: str, max_running: int | None) -> None:
        await self._execute(Q.set_max_running, {"botgroup": botgroup, "max_running": max_running})

    async def delete_botgroup(self, botgroup: str) -> None:
        await self._execute(Q.delete_botgroup, {"botgroup": botgroup})

    async def has_capacity(self, project: int) -> bool:
        row = await self._fetchone(Q.has_capacity, {"project": project})
        return bool(row[0]) if row else True

    # -- credentials ----------------------------------------------------------------------

    async def create_api_key(self, key_hash: str, name: str, project: int | None) -> ApiKey:
        created = self._now_ms()

        async def insert(conn: AsyncConnection[Any]) -> ApiKey:
            cursor = await conn.execute(Q.create_api_key, {
                "key_hash": key_hash, "name": name, "project": project, "created": created})
            row = await cursor.fetchone()
            assert row is not None
            return ApiKey(int(row[0]), name, project, created)

        return await self._run(insert, retry=False)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._fetchone(Q.find_api_key, {"key_hash": key_hash})
        return ApiKey(*row) if row else None

    async def list_api_keys(self) -> list[ApiKey]:
        return [ApiKey(*row) for row in await self._fetchall(Q.list_api_keys)]

    async def revoke_api_key(self, key_id: int) -> bool:
        return await self._execute(Q.revoke_api_key, {"now": self._now_ms(), "key_id": key_id}) > 0

    async def get_or_create_secret(self, name: str, value: str) -> str:
        await self._execute(Q.insert_secret, {"name": name, "value": value})
        row = await self._fetchone(Q.secret, {"name": name})
        assert row is not None
        return str(row[0])

    # -- token secrets and metrics (tokens engineer) ------------------------------------------

    async def secrets_named(self, prefix: str) -> dict[str, str]:
        rows = await self._fetchall(
            "SELECT name, value FROM secrets WHERE name = %(prefix)s"
            " OR left(name, %(n)s) = %(prefix)s || '@'",
            {"prefix": prefix, "n": len(prefix) + 1},
        )
        return {str(name): str(value) for name, value in rows}

    async def delete_secrets(self, names: Sequence[str]) -> None:
        await self._execute("DELETE FROM secrets WHERE name = ANY(%(names)s::text[])",
                            {"names": list(names)})

    async def queue_depths(self, max_projects: int) -> dict[int, dict[State, int]]:
        rows = await self._fetchall(
            "SELECT project_id, state, SUM(n)::bigint FROM state_counts"
            " WHERE state < 3 AND project_id IN (SELECT DISTINCT project_id"
            " FROM state_counts ORDER BY project_id LIMIT %(limit)s)"
            " GROUP BY project_id, state",
            {"limit": max_projects},
        )
        found: dict[int, dict[State, int]] = {}
        for project, state, n in rows:
            found.setdefault(int(project), {})[State(state)] = int(n)
        return found

    # -- job data (items, logs, requests) ----------------------------------------------

    def chunk_store(self) -> ChunkStore:
        from jobq.storage._pg_chunks import PostgresChunkStore

        return PostgresChunkStore(self._run)
    # -- app API and periodic jobs (issue 13): statements in _pg_schedules -----------------

    async def list_spiders(self, project: int) -> list[tuple[int, str, list[str]]]:
        rows = await self._fetchall(sched.LIST_SPIDERS, {"project": project})
        return [sched.spider_row(r) for r in rows]

    async def spider_tags(self, project: int, spider: int) -> list[str]:
        row = await self._fetchone(sched.SPIDER_TAGS, {"project": project, "spider": spider})
        return list(orjson.loads(row[0])) if row else []

    async def update_spider_tags(
        self, project: int, spider: int, add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        return await self._write(project, functools.partial(
            sched.update_spider_tags, spider=spider, add=add, remove=remove))

    async def register_spiders(self, project: int, source: str, names: Sequence[str]) -> None:
        await self._write(project, functools.partial(
            sched.register_spiders, source=source, names=names, now_ms=self._now_ms()))

    async def registered_spiders(self, project: int) -> list[str]:
        rows = await self._fetchall(sched.REGISTERED_SPIDERS, {"project": project})
        return [str(r[0]) for r in rows]

    async def create_schedule(
        self, project: int, spec: ScheduleSpec, paused: bool, next_tick_ms: int | None
    ) -> Schedule:
        return await self._write(project, functools.partial(
            sched.create_schedule, spec=spec, paused=paused, next_tick_ms=next_tick_ms,
            now_ms=self._now_ms()))

    async def get_schedule(self, project: int, schedule_id: int) -> Schedule | None:
        row = await self._fetchone(sched.GET_SCHEDULE, {"project": project, "id": schedule_id})
        return sched.schedule(row) if row else None

    async def list_schedules(self, project: int) -> list[Schedule]:
        return [sched.schedule(r) for r in
                await self._fetchall(sched.LIST_SCHEDULES, {"project": project})]

    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        return [sched.schedule(r) for r in
                await self._fetchall(sched.DUE_SCHEDULES, {"now": now_ms, "limit": limit})]

    async def next_due_ms(self) -> int | None:
        row = await self._fetchone(sched.NEXT_DUE)
        return None if row is None or row[0] is None else int(row[0])

    async def update_schedule(
        self, project: int, schedule_id: int, spec: ScheduleSpec | None = None,
        paused: bool | None = None, next_tick_ms: int | None = None, set_next: bool = False,
    ) -> Schedule | None:
        return await self._write(project, functools.partial(
            sched.update_schedule, schedule_id=schedule_id, spec=spec, paused=paused,
            next_tick_ms=next_tick_ms, set_next=set_next, now_ms=self._now_ms()),
            ensure_project=False)

    async def delete_schedule(self, project: int, schedule_id: int) -> bool:
        return await self._write(project, functools.partial(
            sched.delete_schedule, schedule_id=schedule_id), ensure_project=False)

    async def fire_schedule(
        self, project: int, schedule_id: int, expected_next: int | None,
        new_next: int | None, firings: Sequence[tuple[int | None, NewJob]], missed: int,
        actor: str,
    ) -> list[Pushed] | None:
        return await self._write(project, functools.partial(
            sched.fire, schedule_id=schedule_id, expected_next=expected_next,
            new_next=new_next, firings=firings, missed=missed, actor=actor))

    async def schedule_ticks(
        self, schedule_id: int, limit: int
    ) -> list[tuple[int, int, str | None, str]]:
        rows = await self._fetchall(sched.TICKS, {"id": schedule_id, "limit": limit})
        return [(int(a), int(b), c, str(d)) for a, b, c, d in rows]
    # -- workers and leases (issue 10) ------------------------------------------------------

    async def register_worker(self, worker: Worker) -> None:
        await self._run(functools.partial(pg_workers.register, worker=worker), retry=False)

    async def unregister_worker(self, worker_id: str) -> bool:
        return await self._run(functools.partial(pg_workers.unregister, worker_id=worker_id))

    async def get_worker(self, worker_id: str) -> Worker | None:
        return await self._read(functools.partial(pg_workers.get_worker, worker_id=worker_id))

    async def list_workers(self) -> list[Worker]:
        return await self._read(pg_workers.list_workers)

    async def heartbeat(
        self, worker_id: str, keys: Sequence[JobKey], now_ms: int, timeouts: Timeouts
    ) -> list[JobAnswer] | None:
        return await self._run(functools.partial(
            pg_workers.heartbeat, worker_id=worker_id, keys=keys, now_ms=now_ms,
            timeouts=timeouts))

    async def start_leased_job(
        self, project: int, request: StartRequest, actor: str, lease: NewLease
    ) -> tuple[JobKey, dict[str, Any]] | None:
        claim: Callable[[tx.Tx], Awaitable[Any]] = functools.partial(
            pg_workers.start_leased_job, request=request, actor=actor, lease=lease)
        claimed: tuple[JobKey, dict[str, Any]] | None = await self._write(
            project, claim, ensure_project=False, claims=True, late=True)
        return claimed

    async def reaper_tick(self, now_ms: int, gap_ms: int, timeouts: Timeouts) -> bool:
        return await self._run(functools.partial(
            pg_workers.reaper_tick, now_ms=now_ms, gap_ms=gap_ms, timeouts=timeouts))

    async def due_leases(self, now_ms: int, limit: int) -> list[Lease]:
        return await self._read(functools.partial(pg_workers.due_leases, now_ms=now_ms,
                                                  limit=limit))

    async def expire_lease(self, lease: Lease, policy: LostPolicy, now_ms: int) -> str | None:
        return await self._write(
            lease.key.project,
            functools.partial(pg_workers.expire_lease, lease=lease, policy=policy,
                              now_ms=now_ms),
            ensure_project=False,
        )

    async def request_stop(self, lease: Lease, stop: Stop, now_ms: int) -> bool:
        params = pg_workers.time_limit_params(lease, stop, now_ms)
        return await self._execute(pg_workers.W.time_limit_stop, params) > 0

    async def watch_pending(self, notify: Callable[[int], None]) -> None:
        await pg_workers.watch_pending(self.url, self._connect_kwargs(), notify)

    # -- units of a project (fidelity with the hosted jobsummary) ---------------------------

    async def units_in_use(self, project: int) -> tuple[int, int | None]:
        row = await self._fetchone(Q.units_in_use, {"project": project, "cap": UNITS_CAP})
        assert row is not None
        return int(row[0]), None if row[1] is None else int(row[1])
