"""The storage interface: the only storage module that `jobq.core` imports.

A backend is a class implementing `Storage`; `jobq.storage.open_storage(url)` picks one.
Every write method is one atomic transaction: it either happens whole or raises and
changes nothing. A write method returns only once its transaction is durably committed.
Rules (transitions, metadata fields) come from `jobq.domain.jobs` so that every backend
applies the same ones.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

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
from jobq.storage.chunks import ChunkStore

#: largest `units` a job's metadata counts with in `units_in_use` (past it, or not an
#: integer: 1)
UNITS_CAP = 1_000_000_000


class Storage(abc.ABC):
    """Where jobs live. Implementations: `SqliteStorage`, `PostgresStorage`."""

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and bring the schema up to date (migrations)."""

    @abc.abstractmethod
    async def prepare(self) -> int:
        """Check that the database is jobq's (or empty) and not newer than this code,
        then apply the migrations it lacks; returns the schema version. Raises
        `DatabaseRefused` (having written nothing) for a database jobq must not use.
        `open()` runs it; the CLI runs it first, to refuse before serving."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release connections."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless the database answers."""

    # -- jobs: writes ------------------------------------------------------------------

    @abc.abstractmethod
    async def push(self, project: int, jobs: Sequence[NewJob], actor: str) -> list[Pushed]:
        """Create jobs, in order. A line whose `unique` matches an active (pending or
        running) job of the project, or an earlier line of the same push, is refused
        with `Pushed(None, duplicate_of=...)`; the other lines are created."""

    @abc.abstractmethod
    async def start_job(
        self, project: int, request: StartRequest, actor: str
    ) -> tuple[JobKey, dict[str, Any]] | None:
        """Claim the next pending job (highest priority, then oldest), move it to
        running and merge `request.params` into its metadata. None when no job is
        pending, the project is not in `request.botgroup`, or a botgroup of the
        project is at its `max_running`. Never hands one job out twice."""

    @abc.abstractmethod
    async def update(
        self, project: int, updates: Sequence[JobUpdate], actor: str
    ) -> list[Updated]:
        """Apply updates in order. A job key whose transition is not allowed raises
        `Conflict` (and nothing is changed); a spider key skips such jobs."""

    @abc.abstractmethod
    async def cancel(
        self, project: int, keys: Sequence[JobKey] | None, limit: int | None, actor: str
    ) -> Cancelled:
        """Cancel the given jobs (or, with `keys=None`, up to `limit` pending jobs,
        oldest first). A pending job becomes finished with `close_reason: cancelled`;
        a running job records `cancel_requested_time`."""

    @abc.abstractmethod
    async def set_job_meta(self, key: JobKey, fields: dict[str, Any]) -> bool:
        """Merge fields into a job's metadata. False when the job does not exist."""

    @abc.abstractmethod
    async def delete_job_meta_field(self, key: JobKey, name: str) -> bool:
        """Remove one metadata field. False when the job does not exist."""

    @abc.abstractmethod
    async def remove_job(self, key: JobKey) -> bool:
        """Remove a job from every queue, keeping a tombstone for `stop`."""

    # -- jobs: reads ------------------------------------------------------------------

    @abc.abstractmethod
    async def get_job_meta(self, key: JobKey) -> dict[str, Any] | None:
        """The whole metadata of a job, or None when it does not exist (or was removed)."""

    @abc.abstractmethod
    async def list_jobs(self, project: int, query: ListQuery) -> list[JobRecord]:
        """Jobs matching `query`, highest position first."""

    @abc.abstractmethod
    async def list_text(self, project: int, query: ListQuery, now: int) -> str:
        """The plain rows (`jobq.domain.rows.LIST_ROW`, `elapsed` measured at `now`) of
        the jobs `list_jobs` would answer, as JSON text built by the database: one row a
        line, highest position first; "" when none. `query.with_meta` is not read."""

    @abc.abstractmethod
    async def count_jobs(self, project: int, query: ListQuery) -> int:
        """How many jobs match `query` (ignoring `count`/`start`)."""

    @abc.abstractmethod
    async def state_counts(self, project: int, spider: int | None = None) -> dict[State, int]:
        """Jobs in each state, maintained on every write (not counted at read time)."""

    @abc.abstractmethod
    async def stop_position(
        self, key: JobKey, states: Sequence[State]
    ) -> int | None:
        """The position at which `key`'s job last entered one of `states`, also if it
        has moved on or was removed since; None if it never did."""

    @abc.abstractmethod
    async def last_jobs(self, project: int, spider: int | None) -> list[JobRecord]:
        """The newest job (highest job number, not deleted) of each spider."""

    @abc.abstractmethod
    async def projects(self) -> list[int]:
        """Every project that has jobs, spiders or settings."""

    # -- spiders, settings, botgroups -----------------------------------------------------

    @abc.abstractmethod
    async def spider_id(self, project: int, name: str, create: bool) -> int | None:
        """The id of a spider name; a new name gets the next id when `create`."""

    @abc.abstractmethod
    async def spider_names(self, project: int, ids: Sequence[int]) -> dict[int, str]:
        """Names of the given spider ids of a project."""

    @abc.abstractmethod
    async def get_settings(self, project: int) -> dict[str, Any]:
        """The project's settings object (empty when none were set)."""

    @abc.abstractmethod
    async def update_settings(
        self, project: int, fields: dict[str, Any], remove: Sequence[str] = ()
    ) -> None:
        """Merge fields into the project's settings and drop `remove`. The `botgroups`
        setting (a list of names) puts the project into those botgroups."""

    @abc.abstractmethod
    async def set_max_running(self, botgroup: str, max_running: int | None) -> None:
        """Cap the running jobs of a botgroup's projects (None: no cap)."""

    @abc.abstractmethod
    async def delete_botgroup(self, botgroup: str) -> None:
        """Forget a botgroup's cap."""

    @abc.abstractmethod
    async def has_capacity(self, project: int) -> bool:
        """False when a botgroup of the project is at its `max_running`."""

    # -- credentials ----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_api_key(self, key_hash: str, name: str, project: int | None) -> ApiKey:
        """Store a new key by its hash."""

    @abc.abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live (not revoked) key with this hash."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included."""

    @abc.abstractmethod
    async def revoke_api_key(self, key_id: int) -> bool:
        """Revoke a key. False if there is no live key with that id."""

    @abc.abstractmethod
    async def get_or_create_secret(self, name: str, value: str) -> str:
        """A server secret (e.g. the job-token signing key): the stored one, or
        `value` stored now if there was none."""

    # -- token secrets and metrics (tokens engineer) ------------------------------------------

    @abc.abstractmethod
    async def secrets_named(self, prefix: str) -> dict[str, str]:
        """Every stored secret whose name is `prefix` or starts with `prefix@`, by name."""

    @abc.abstractmethod
    async def delete_secrets(self, names: Sequence[str]) -> None:
        """Forget the given secrets (names not stored are ignored)."""

    @abc.abstractmethod
    async def queue_depths(self, max_projects: int) -> dict[int, dict[State, int]]:
        """Jobs in each listable state (pending, running, finished) of the first
        `max_projects` projects (lowest ids), from the maintained counts, in one query.
        Projects without jobs are left out."""

    # -- job data (items, logs, requests) ----------------------------------------------

    def chunk_store(self) -> ChunkStore:
        """The store of what jobs produce, in this database (see `jobq.storage.chunks`)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no job data")

    # -- app API and periodic jobs (issue 13) ---------------------------------------------

    @abc.abstractmethod
    async def list_spiders(self, project: int) -> list[tuple[int, str, list[str]]]:
        """Every spider of the project (id, name, spider tags), in id order."""

    @abc.abstractmethod
    async def spider_tags(self, project: int, spider: int) -> list[str]:
        """The tags of one spider (not of its jobs)."""

    @abc.abstractmethod
    async def update_spider_tags(
        self, project: int, spider: int, add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        """Add and remove tags of one spider; returns its tags."""

    @abc.abstractmethod
    async def register_spiders(self, project: int, source: str, names: Sequence[str]) -> None:
        """Record the spider names that `source` (a worker) can run in the project,
        replacing what that source registered before."""

    @abc.abstractmethod
    async def registered_spiders(self, project: int) -> list[str]:
        """Spider names registered by any source for the project (empty: none)."""

    @abc.abstractmethod
    async def create_schedule(
        self, project: int, spec: ScheduleSpec, paused: bool, next_tick_ms: int | None
    ) -> Schedule:
        """Store a new schedule whose first tick is `next_tick_ms`."""

    @abc.abstractmethod
    async def get_schedule(self, project: int, schedule_id: int) -> Schedule | None:
        """One schedule of the project."""

    @abc.abstractmethod
    async def list_schedules(self, project: int) -> list[Schedule]:
        """The project's schedules, in id order."""

    @abc.abstractmethod
    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        """Schedules not paused whose next tick is at or before `now_ms`, most overdue
        first, of every project."""

    @abc.abstractmethod
    async def next_due_ms(self) -> int | None:
        """The earliest next tick of any schedule not paused."""

    @abc.abstractmethod
    async def update_schedule(
        self, project: int, schedule_id: int, spec: ScheduleSpec | None = None,
        paused: bool | None = None, next_tick_ms: int | None = None, set_next: bool = False,
    ) -> Schedule | None:
        """Change a schedule's spec and/or paused flag, and its next tick when `set_next`;
        None when there is no such schedule."""

    @abc.abstractmethod
    async def delete_schedule(self, project: int, schedule_id: int) -> bool:
        """Remove a schedule (its jobs stay). False when there was none."""

    @abc.abstractmethod
    async def fire_schedule(
        self, project: int, schedule_id: int, expected_next: int | None,
        new_next: int | None, firings: Sequence[tuple[int | None, NewJob]], missed: int,
        actor: str,
    ) -> list[Pushed] | None:
        """In one transaction: move the schedule's next tick from `expected_next` to
        `new_next` (compare-and-set; None and nothing done when it is no longer
        `expected_next` or the schedule is paused or gone), record each tick of `firings`
        (a tick already recorded is never pushed again: `Pushed(None)`), push its job, and
        record the last outcome. `expected_next=None` (run now) skips the cursor check."""

    @abc.abstractmethod
    async def schedule_ticks(
        self, schedule_id: int, limit: int
    ) -> list[tuple[int, int, str | None, str]]:
        """The newest recorded ticks of a schedule: (tick, fired at, job key, outcome)."""
    # -- workers and leases (issue 10; rules in jobq.domain.leases) -------------------------

    @abc.abstractmethod
    async def register_worker(self, worker: Worker) -> None:
        """Store a new worker (its id is new)."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> bool:
        """Forget a worker; False when unknown. Raises `Conflict` while it holds leases
        of running jobs (they must be finished first)."""

    @abc.abstractmethod
    async def get_worker(self, worker_id: str) -> Worker | None:
        """A worker with the jobs it holds leases on."""

    @abc.abstractmethod
    async def list_workers(self) -> list[Worker]:
        """Every registered worker with the jobs it holds leases on."""

    @abc.abstractmethod
    async def heartbeat(
        self, worker_id: str, keys: Sequence[JobKey], now_ms: int, timeouts: Timeouts
    ) -> list[JobAnswer] | None:
        """Renew the worker (a lost one comes back) and the leases it holds on `keys`,
        record the stops the answers ask for, and answer each key
        (`leases.heartbeat_job`). None when the worker is not registered. Never changes
        a lease of another worker."""

    @abc.abstractmethod
    async def start_leased_job(
        self, project: int, request: StartRequest, actor: str, lease: NewLease
    ) -> tuple[JobKey, dict[str, Any]] | None:
        """`start_job` by a registered worker: the claimed job gets `lease`, in the same
        transaction. Raises `NotFound` for an unknown worker, `Conflict` for a lost one."""

    @abc.abstractmethod
    async def reaper_tick(self, now_ms: int, gap_ms: int, timeouts: Timeouts) -> bool:
        """Record a reaper tick; when the last tick of any node is older than `gap_ms`,
        first give every worker and lease a whole worker timeout (True then). Marks the
        workers whose heartbeat expired as lost."""

    @abc.abstractmethod
    async def due_leases(self, now_ms: int, limit: int) -> list[Lease]:
        """Leases that `leases.due` may act on at `now_ms` (expired, past a stop deadline
        or past the run time), oldest deadline first."""

    @abc.abstractmethod
    async def expire_lease(self, lease: Lease, policy: LostPolicy, now_ms: int) -> str | None:
        """Act on an expired lease or stop, in one transaction that first takes the
        lease only if it is still due (so of many nodes one does it): finish the job
        (`lost` or the stop's expiry reason) or requeue it. The close_reason set (or
        "requeued"); None when the lease was no longer due, or its job no longer running."""

    @abc.abstractmethod
    async def request_stop(self, lease: Lease, stop: Stop, now_ms: int) -> bool:
        """Record a time-limit stop on a lease past its run time, unless a stop is
        already recorded. False when nothing changed."""

    async def watch_pending(self, notify: Callable[[int], None]) -> None:
        """Call `notify(project)` whenever another server process makes a job of that
        project pending, until cancelled. One process owns an SQLite file, so there is
        nothing to watch there: this returns at once."""
        return None

    # -- units of a project (fidelity with the hosted jobsummary) ---------------------------

    @abc.abstractmethod
    async def units_in_use(self, project: int) -> tuple[int, int | None]:
        """The units of the project's running jobs, summed, and the most units of one of
        its pending jobs (None when none is pending). A job's units are its metadata's
        `units` when an integer from 1 to `UNITS_CAP`, else 1 (clients may overwrite
        the field with anything)."""
