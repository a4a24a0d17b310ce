"""The embedded backend: one SQLite file in WAL mode.

Writes go through one group-commit writer thread (`_sqlite_writer`); reads run on a
small pool of reader threads, each with its own connection, which WAL lets read while
the writer writes. Durability: `synchronous=FULL` by default, so a commit is fsynced
before any caller is answered; `synchronous="NORMAL"` trades the last commits before a
power cut (never a `kill -9`) for fewer fsyncs.

Start-up (`migrate`) opens the file without changing it, checks that it is jobq's (its
`application_id` is `APPLICATION_ID`), empty, or a jobq database from before databases
were marked (schema 1, jobq's tables), and that its schema is not newer than the code;
anything else is refused with `DatabaseRefused` before a byte is written. The data
directory is created 0700 and the database 0600 (SQLite gives its -wal and -shm files
the database's mode), backups 0600 too: job metadata and key hashes are nobody else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from jobq import errors
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
from jobq.storage import _sqlite_read as read
from jobq.storage import _sqlite_schedules as sched
from jobq.storage import _sqlite_tx as tx
from jobq.storage import _sqlite_workers as workers
from jobq.storage._sqlite_writer import GroupCommitWriter, translate
from jobq.storage.base import UNITS_CAP, Storage
from jobq.storage.chunks import ChunkStore

T = TypeVar("T")

#: reader threads (each holds one connection)
READERS = 4
#: how long a connection waits for another process's lock before failing (ms)
BUSY_TIMEOUT_MS = 5000
#: `PRAGMA application_id` of a jobq database (set by migration 0002): "jobq" in ASCII
APPLICATION_ID = 0x6A6F6271
#: the schema version of databases made before migration 0002 marked them, and the
#: tables that tell such a database from another application's
UNMARKED_VERSION = 1
UNMARKED_TABLES = frozenset({"projects", "spiders", "jobs", "state_counts", "api_keys",
                             "secrets"})


#: what a migration computes in Python after its script, in its transaction: values
#: whose rule lives in the domain (written once, not again in SQL)
BACKFILLS: dict[int, Callable[[sqlite3.Connection], None]] = {7: tx.backfill_counters}


def migrations() -> list[tuple[int, str]]:
    """The numbered migrations, in order."""
    folder = resources.files("jobq.storage") / "sql" / "sqlite" / "migrations"
    found = sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return found


def split_statements(script: str) -> list[str]:
    """Split a script into statements (triggers hold `;` inside BEGIN ... END)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        raise ValueError(f"incomplete SQL statement: {current[:80]!r}")
    return statements


class SqliteStorage(Storage):
    """Jobs in one SQLite file at `path`."""

    def __init__(self, path: str | Path, synchronous: str = "FULL", clock: Clock = SYSTEM) -> None:
        self.path = str(path)
        #: the time positions and key dates are taken from (a ManualClock in tests)
        self._clock = clock
        self.synchronous = synchronous
        self._writer = GroupCommitWriter(self._connect, name=self.path)
        #: why the database is known to be damaged (reads and writes found out)
        self._corrupt: str | None = None
        self._local = threading.local()
        self._readers: ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA cache_size = -16000")  # KiB: 16 MiB of page cache a connection
        # a savepoint's journal (each operation of a group commit runs in one) in memory: on
        # a file it spills past 64 KiB, about the pages of two claims, and each spill
        # writes and deletes a temporary file (a claim's UPDATE: 28 us instead of 16)
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _now_ms(self) -> int:
        return self._clock.now_ms()

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await self.prepare()
        self._writer.start()
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="jobq-sqlite-reader")

    async def prepare(self) -> int:
        if self.synchronous.upper() not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise errors.JobqError(f"unknown SQLite synchronous setting {self.synchronous!r}")
        return await asyncio.to_thread(self.migrate)

    def migrate(self) -> int:
        """Check the database (see the module docstring), then create the schema or apply
        the migrations it lacks; returns the version."""
        path = Path(self.path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(path)
        except OSError as exc:
            raise errors.DatabaseRefused(f"{path}: cannot create the database: {exc}") from exc
        # no WAL pragma yet: a file that is refused is left exactly as it was
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise _startup_error(exc, self.path) from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            version = _check_database(conn, self.path)
            steps = migrations()
            latest = steps[-1][0] if steps else 0
            # a fresh database runs every migration from 0001: one path for new and old
            for number, script in steps:
                if number > version:
                    for statement in split_statements(script):
                        conn.execute(statement)
                    if number in BACKFILLS:
                        BACKFILLS[number](conn)
            if latest != version:
                conn.execute(f"PRAGMA user_version = {latest}")
            conn.execute("COMMIT")
            return latest
        except sqlite3.Error as exc:
            raise _startup_error(exc, self.path) from exc
        finally:
            with contextlib.suppress(sqlite3.Error):  # the error in flight says more
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            conn.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns.clear()

    async def backup(self, destination: str) -> None:
        """A consistent copy of the live database into a new file, readable by its owner
        only (SQLite's online backup: writers are not stopped)."""
        try:
            _create_private(Path(destination), exclusive=True)
        except FileExistsError:
            raise errors.JobqError(
                f"{destination} exists: give the backup a new file name") from None
        except OSError as exc:
            raise errors.JobqError(f"cannot create {destination}: {exc.strerror}") from None

        def copy() -> None:
            source = self._connect()
            target = sqlite3.connect(destination)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()

        try:
            await asyncio.to_thread(copy)
        except BaseException:
            Path(destination).unlink(missing_ok=True)
            raise

    async def ping(self) -> None:
        corrupt = self._corrupt or self._writer.corrupt
        if corrupt is not None:
            raise errors.StorageCorrupt(corrupt)
        self._writer.check()
        await self._read(lambda conn: conn.execute("SELECT count(*) FROM sqlite_master")
                         .fetchone())

    # -- plumbing ----------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise errors.StorageUnavailable("the database is closed")

        def run() -> T:
            conn = self._reader()
            try:
                conn.execute("BEGIN")  # one snapshot for every statement of fn
                try:
                    result = fn(conn)
                except BaseException:
                    # a read has nothing to keep; a failing ROLLBACK must not hide why
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except errors.StorageCorrupt as exc:
            self._corrupt = exc.message  # /readyz says so from now on
            raise

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """`fn` run by the writer: awaited by the caller, no coroutine of its own (a write
        found the file damaged: the writer keeps the reason, `ping` reports it)."""
        return self._writer.submit(fn)

    # -- jobs: writes ------------------------------------------------------------------

    async def push(self, project: int, jobs: Sequence[NewJob], actor: str) -> list[Pushed]:
        return await self._write(tx.PushOp.prepare(project, jobs, actor, self._now_ms()))

    async def start_job(
        self, project: int, request: StartRequest, actor: str
    ) -> tuple[JobKey, dict[str, Any]] | None:
        return await self._write(functools.partial(tx.start_job, project=project, request=request,
                                                   actor=actor, now_ms=self._now_ms()))

    async def update(
        self, project: int, updates: Sequence[JobUpdate], actor: str
    ) -> list[Updated]:
        return await self._write(functools.partial(tx.update, project=project, updates=updates,
                                                   actor=actor, now_ms=self._now_ms()))

    async def cancel(
        self, project: int, keys: Sequence[JobKey] | None, limit: int | None, actor: str
    ) -> Cancelled:
        return await self._write(functools.partial(tx.cancel, project=project, keys=keys,
                                                   limit=limit, actor=actor, now_ms=self._now_ms()))

    async def set_job_meta(self, key: JobKey, fields: dict[str, Any]) -> bool:
        return await self._write(functools.partial(tx.set_job_meta, key=key, fields=fields))

    async def delete_job_meta_field(self, key: JobKey, name: str) -> bool:
        return await self._write(functools.partial(tx.delete_job_meta_field, key=key, name=name))

    async def remove_job(self, key: JobKey) -> bool:
        return await self._write(functools.partial(tx.remove_job, key=key))

    # -- jobs: reads -------------------------------------------------------------------

    async def get_job_meta(self, key: JobKey) -> dict[str, Any] | None:
        return await self._read(functools.partial(read.get_job_meta, key=key))

    async def list_jobs(self, project: int, query: ListQuery) -> list[JobRecord]:
        return await self._read(functools.partial(read.list_jobs, project=project, query=query))

    async def list_text(self, project: int, query: ListQuery, now: int) -> str:
        return await self._read(
            functools.partial(read.list_text, project=project, query=query, now=now))

    async def count_jobs(self, project: int, query: ListQuery) -> int:
        return await self._read(functools.partial(read.count_jobs, project=project, query=query))

    async def state_counts(self, project: int, spider: int | None = None) -> dict[State, int]:
        spiders = None if spider is None else (spider,)
        return await self._read(
            functools.partial(read.state_counts_for, project=project, spiders=spiders)
        )

    async def stop_position(self, key: JobKey, states: Sequence[State]) -> int | None:
        return await self._read(functools.partial(read.stop_position, key=key, states=states))

    async def last_jobs(self, project: int, spider: int | None) -> list[JobRecord]:
        return await self._read(functools.partial(read.last_jobs, project=project, spider=spider))

    async def projects(self) -> list[int]:
        return await self._read(
            lambda conn: [r[0] for r in conn.execute("SELECT project_id FROM projects ORDER BY 1")]
        )

    # -- spiders, settings, botgroups -----------------------------------------------------

    async def spider_id(self, project: int, name: str, create: bool) -> int | None:
        found = await self._read(
            functools.partial(tx.spider_id, project=project, name=name, create=False)
        )
        if found is not None or not create:
            return found
        return await self._write(
            functools.partial(tx.spider_id, project=project, name=name, create=True)
        )

    async def spider_names(self, project: int, ids: Sequence[int]) -> dict[int, str]:
        def names(conn: sqlite3.Connection) -> dict[int, str]:
            marks = ", ".join("?" * len(ids))
            rows = conn.execute(
                "SELECT spider_id, name FROM spiders"
                f" WHERE project_id = ? AND spider_id IN ({marks})",
                (project, *ids),
            )
            return {sid: name for sid, name in rows}

        return await self._read(names) if ids else {}

    async def get_settings(self, project: int) -> dict[str, Any]:
        def settings(conn: sqlite3.Connection) -> dict[str, Any]:
            row = conn.execute(
                "SELECT settings FROM projects WHERE project_id = ?", (project,)
            ).fetchone()
            return orjson.loads(row[0]) if row else {}

        return await self._read(settings)

    async def update_settings(
        self, project: int, fields: dict[str, Any], remove: Sequence[str] = ()
    ) -> None:
        await self._write(functools.partial(tx.update_settings, project=project, fields=fields,
                                            remove=remove))

    async def set_max_running(self, botgroup: str, max_running: int | None) -> None:
        await self._write(lambda conn: conn.execute(
            "INSERT INTO botgroups (botgroup, max_running) VALUES (?, ?)"
            " ON CONFLICT (botgroup) DO UPDATE SET max_running = excluded.max_running",
            (botgroup, max_running),
        ))

    async def delete_botgroup(self, botgroup: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM botgroups WHERE botgroup = ?", (botgroup,))
        )

    async def has_capacity(self, project: int) -> bool:
        return await self._read(functools.partial(tx.has_capacity, project=project))

    # -- credentials ----------------------------------------------------------------------

    async def create_api_key(self, key_hash: str, name: str, project: int | None) -> ApiKey:
        created = self._now_ms()

        def insert(conn: sqlite3.Connection) -> ApiKey:
            (key_id,) = conn.execute(
                "INSERT INTO api_keys (key_hash, name, project_id, created_ms) VALUES (?, ?, ?, ?)"
                " RETURNING key_id",
                (key_hash, name, project, created),
            ).fetchone()
            return ApiKey(key_id, name, project, created)

        return await self._write(insert)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        def find(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                "SELECT key_id, name, project_id, created_ms, revoked_ms FROM api_keys"
                " WHERE key_hash = ? AND revoked_ms IS NULL",
                (key_hash,),
            ).fetchone()
            return ApiKey(*row) if row else None

        return await self._read(find)

    async def list_api_keys(self) -> list[ApiKey]:
        return await self._read(lambda conn: [
            ApiKey(*row) for row in conn.execute(
                "SELECT key_id, name, project_id, created_ms, revoked_ms FROM api_keys"
                " ORDER BY key_id"
            )
        ])

    async def revoke_api_key(self, key_id: int) -> bool:
        now = self._now_ms()
        return await self._write(lambda conn: conn.execute(
            "UPDATE api_keys SET revoked_ms = ? WHERE key_id = ? AND revoked_ms IS NULL",
            (now, key_id),
        ).rowcount > 0)

    async def get_or_create_secret(self, name: str, value: str) -> str:
        def get_or_create(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, value))
            (stored,) = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return str(stored)

        return await self._write(get_or_create)

    # -- token secrets and metrics (tokens engineer) ------------------------------------------

    async def secrets_named(self, prefix: str) -> dict[str, str]:
        return await self._read(lambda conn: {
            str(name): str(value) for name, value in conn.execute(
                "SELECT name, value FROM secrets WHERE name = ? OR substr(name, 1, ?) = ?",
                (prefix, len(prefix) + 1, prefix + "@"),
            )
        })

    async def delete_secrets(self, names: Sequence[str]) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM secrets WHERE name = ?", [(n,) for n in names])

        await self._write(delete)

    async def queue_depths(self, max_projects: int) -> dict[int, dict[State, int]]:
        def depths(conn: sqlite3.Connection) -> dict[int, dict[State, int]]:
            found: dict[int, dict[State, int]] = {}
            for project, state, n in conn.execute(
                "SELECT project_id, state, SUM(n) FROM state_counts"
                " WHERE state < 3 AND project_id IN (SELECT DISTINCT project_id"
                " FROM state_counts ORDER BY project_id LIMIT ?)"
                " GROUP BY project_id, state",
                (max_projects,),
            ):
                found.setdefault(int(project), {})[State(state)] = int(n)
            return found

        return await self._read(depths)

    # -- job data (items, logs, requests) ----------------------------------------------

    def chunk_store(self) -> ChunkStore:
        from jobq.storage._sqlite_chunks import SqliteChunkStore

        return SqliteChunkStore(self._write, self._read)


    # -- app API and periodic jobs (issue 13): statements in _sqlite_schedules -------------

    async def list_spiders(self, project: int) -> list[tuple[int, str, list[str]]]:
        return await self._read(functools.partial(sched.list_spiders, project=project))

    async def spider_tags(self, project: int, spider: int) -> list[str]:
        return await self._read(
            functools.partial(sched.spider_tags, project=project, spider=spider))

    async def update_spider_tags(
        self, project: int, spider: int, add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        return await self._write(functools.partial(
            sched.update_spider_tags, project=project, spider=spider, add=add, remove=remove))

    async def register_spiders(self, project: int, source: str, names: Sequence[str]) -> None:
        await self._write(functools.partial(
            sched.register_spiders, project=project, source=source, names=names,
            now_ms=self._now_ms()))

    async def registered_spiders(self, project: int) -> list[str]:
        return await self._read(functools.partial(sched.registered_spiders, project=project))

    async def create_schedule(
        self, project: int, spec: ScheduleSpec, paused: bool, next_tick_ms: int | None
    ) -> Schedule:
        return await self._write(functools.partial(
            sched.create_schedule, project=project, spec=spec, paused=paused,
            next_tick_ms=next_tick_ms, now_ms=self._now_ms()))

    async def get_schedule(self, project: int, schedule_id: int) -> Schedule | None:
        return await self._read(functools.partial(
            sched.get_schedule, project=project, schedule_id=schedule_id))

    async def list_schedules(self, project: int) -> list[Schedule]:
        return await self._read(functools.partial(sched.list_schedules, project=project))

    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        return await self._read(functools.partial(sched.due_schedules, now_ms=now_ms,
                                                  limit=limit))

    async def next_due_ms(self) -> int | None:
        return await self._read(sched.next_due_ms)

    async def update_schedule(
        self, project: int, schedule_id: int, spec: ScheduleSpec | None = None,
        paused: bool | None = None, next_tick_ms: int | None = None, set_next: bool = False,
    ) -> Schedule | None:
        return await self._write(functools.partial(
            sched.update_schedule, project=project, schedule_id=schedule_id, spec=spec,
            paused=paused, next_tick_ms=next_tick_ms, set_next=set_next, now_ms=self._now_ms()))

    async def delete_schedule(self, project: int, schedule_id: int) -> bool:
        return await self._write(functools.partial(
            sched.delete_schedule, project=project, schedule_id=schedule_id))

    async def fire_schedule(
        self, project: int, schedule_id: int, expected_next: int | None,
        new_next: int | None, firings: Sequence[tuple[int | None, NewJob]], missed: int,
        actor: str,
    ) -> list[Pushed] | None:
        return await self._write(functools.partial(
            sched.fire, project=project, schedule_id=schedule_id, expected_next=expected_next,
            new_next=new_next, firings=firings, missed=missed, actor=actor, now_ms=self._now_ms()))

    async def schedule_ticks(
        self, schedule_id: int, limit: int
    ) -> list[tuple[int, int, str | None, str]]:
        rows = await self._read(functools.partial(sched.ticks, schedule_id=schedule_id,
                                                  limit=limit))
        return [(int(a), int(b), c, str(d)) for a, b, c, d in rows]


    # -- workers and leases (issue 10) ------------------------------------------------------

    async def register_worker(self, worker: Worker) -> None:
        await self._write(functools.partial(workers.register, worker=worker))

    async def unregister_worker(self, worker_id: str) -> bool:
        return await self._write(functools.partial(workers.unregister, worker_id=worker_id))

    async def get_worker(self, worker_id: str) -> Worker | None:
        return await self._read(functools.partial(workers.get_worker, worker_id=worker_id))

    async def list_workers(self) -> list[Worker]:
        return await self._read(workers.list_workers)

    async def heartbeat(
        self, worker_id: str, keys: Sequence[JobKey], now_ms: int, timeouts: Timeouts
    ) -> list[JobAnswer] | None:
        return await self._write(functools.partial(
            workers.heartbeat, worker_id=worker_id, keys=keys, now_ms=now_ms, timeouts=timeouts))

    async def start_leased_job(
        self, project: int, request: StartRequest, actor: str, lease: NewLease
    ) -> tuple[JobKey, dict[str, Any]] | None:
        return await self._write(functools.partial(
            workers.start_leased_job, project=project, request=request, actor=actor,
            lease=lease, now_ms=self._now_ms()))

    async def reaper_tick(self, now_ms: int, gap_ms: int, timeouts: Timeouts) -> bool:
        return await self._write(functools.partial(
            workers.reaper_tick, now_ms=now_ms, gap_ms=gap_ms, timeouts=timeouts))

    async def due_leases(self, now_ms: int, limit: int) -> list[Lease]:
        return await self._read(functools.partial(workers.due_leases, now_ms=now_ms,
                                                  limit=limit))

    async def expire_lease(self, lease: Lease, policy: LostPolicy, now_ms: int) -> str | None:
        return await self._write(functools.partial(
            workers.expire_lease, lease=lease, policy=policy, now_ms=now_ms))

    async def request_stop(self, lease: Lease, stop: Stop, now_ms: int) -> bool:
        return await self._write(functools.partial(
            workers.request_stop, lease=lease, stop=stop, now_ms=now_ms))

    # -- units of a project (fidelity with the hosted jobsummary) ---------------------------

    async def units_in_use(self, project: int) -> tuple[int, int | None]:
        def read(conn: sqlite3.Connection) -> tuple[int, int | None]:
            units = (
                "CASE WHEN json_type(meta, '$.units') = 'integer'"
                " AND json_extract(meta, '$.units') BETWEEN 1 AND ? "
                " THEN json_extract(meta, '$.units') ELSE 1 END"
            )
            running, pending = conn.execute(
                f"SELECT (SELECT COALESCE(SUM({units}), 0) FROM jobs"
                "         WHERE project_id = ? AND state = 1),"
                f"       (SELECT MAX({units}) FROM jobs WHERE project_id = ? AND state = 0)",
                (UNITS_CAP, project, UNITS_CAP, project),
            ).fetchone()
            return int(running), None if pending is None else int(pending)

        return await self._read(read)


# -- start-up checks and file modes --------------------------------------------------------


def _create_private(path: Path, exclusive: bool = False) -> None:
    """Create `path` empty with mode 0600 unless it exists (then FileExistsError only
    if `exclusive`). SQLite takes an empty file for an empty database."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if exclusive:
            raise
        return
    os.close(fd)


def _check_database(conn: sqlite3.Connection, name: str) -> int:
    """The schema version of a database jobq may use, or DatabaseRefused."""
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    latest = migrations()[-1][0]
    if app_id == APPLICATION_ID:
        if version > latest:
            raise errors.DatabaseRefused(
                f"{name}: schema version {version} is newer than this jobq's ({latest}):"
                " run a newer jobq")
        return int(version)
    if app_id != 0:
        raise errors.DatabaseRefused(
            f"{name}: not a jobq database (application_id {app_id:#x}, jobq's is"
            f" {APPLICATION_ID:#x})")
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if version == 0 and not tables:
        return 0  # empty: a new database
    if version == UNMARKED_VERSION and tables >= UNMARKED_TABLES:
        return UNMARKED_VERSION  # made by jobq before migration 0002 marked its databases
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise errors.DatabaseRefused(
        f"{name}: not a jobq database (user_version {version}, tables of its own: {shown})")


def _startup_error(exc: sqlite3.Error, name: str) -> errors.JobqError:
    failure = translate(exc, name)
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_NOTADB:
        return errors.DatabaseRefused(f"{name}: not a SQLite database ({exc})")
    if isinstance(failure, errors.StorageCorrupt):
        return failure
    assert isinstance(failure, errors.JobqError)
    return type(failure)(f"{name}: {failure.message}")
