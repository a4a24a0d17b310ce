"""Workers and leases: the rules that keep jobs from running forever.

A registered worker claims jobs with `startjob` and its worker id; each such job holds a
*lease* that the worker's heartbeats renew. Pure functions only: every time is an
argument (from a `jobq.domain.clock.Clock` in the caller), so the rules are tested by
moving a `ManualClock`, and both backends apply the same ones.

- A lease expires `worker_timeout` after the last heartbeat that renewed it. The reaper
  then finishes the job (`close_reason: lost`), or puts it back to pending when the
  project's `requeue_lost` setting is true and the job has been retried fewer than
  `max_retries` times. A requeued job starts afresh: the lost run's items, log lines and
  requests (`REQUEUE_CLEARS`) are removed in the transaction that requeues it, so the
  next run numbers its records from 0 again and no read mixes the two runs.
- A stop asked of the worker (a cancel, or the project's `max_runtime` reached) carries
  a deadline; a job still running then is finished by the reaper with the stop's
  expiry reason (`cancel_timeout`, `cancelled (time limit)`).
- The heartbeat answers, per job, what the server wants: continue, or stop (with the
  close_reason the worker should report), or stop without reporting (the job is not
  leased to this worker any more).
- When nobody reaped for a while (the database was out of reach, or no server ran),
  every lease gets a whole `worker_timeout` again before any is declared lost: workers
  could not heartbeat either.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from jobq.domain import changes
from jobq.domain.jobs import JobKey, State
from jobq.domain.project_settings import is_count, is_number
from jobq.domain.records_data import Kind

#: default seconds without a heartbeat before a worker and its jobs are lost
WORKER_TIMEOUT = 60.0
#: default seconds a cancelled job may keep running before `cancel_timeout`
CANCEL_TIMEOUT = 300.0
#: how often a worker should heartbeat, as a fraction of the worker timeout
HEARTBEAT_FRACTION = 1 / 3
#: retries of a lost job when `requeue_lost` is on and `max_retries` is not set
MAX_RETRIES_DEFAULT = 3

LOST = "lost"
CANCELLED = "cancelled"
CANCEL_TIMEOUT_REASON = "cancel_timeout"
TIME_LIMIT_REASON = "cancelled (time limit)"
#: metadata field counting how often a lost job was put back to pending
RETRIES_FIELD = "retries"
#: the actor of the reaper's state changes (`completed_by`, ...)
REAPER = "jobq"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker says of itself when it registers."""

    name: str
    host: str
    slots: int
    botgroups: tuple[str, ...]
    projects: tuple[int, ...]
    version: str


@dataclass(frozen=True, slots=True)
class Worker:
    worker_id: str
    info: WorkerInfo
    owner: str
    registered_ms: int
    last_heartbeat_ms: int
    expires_ms: int
    lost_ms: int | None
    jobs: tuple[JobKey, ...] = ()


@dataclass(frozen=True, slots=True)
class NewLease:
    """The lease a leased claim creates."""

    worker_id: str
    lease_id: str
    claimed_ms: int
    expires_ms: int
    runtime_deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class Lease:
    key: JobKey
    worker_id: str
    lease_id: str
    claimed_ms: int
    expires_ms: int
    runtime_deadline_ms: int | None = None
    stop_reason: str | None = None
    stop_deadline_ms: int | None = None
    expiry_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop asked of a worker: what it should report, until when, and the close_reason
    the server sets when the job is still running after the deadline."""

    reason: str
    deadline_ms: int
    expiry_reason: str


@dataclass(frozen=True, slots=True)
class Timeouts:
    worker_ms: int
    cancel_ms: int

    @classmethod
    def of_seconds(cls, worker: float, cancel: float) -> Timeouts:
        return cls(round(worker * 1000), round(cancel * 1000))


@dataclass(frozen=True, slots=True)
class LostPolicy:
    """A project's settings for lost jobs and run time."""

    requeue: bool = False
    max_retries: int = MAX_RETRIES_DEFAULT
    max_runtime_ms: int | None = None


def policy_of(settings: dict[str, Any]) -> LostPolicy:
    """The lease settings of a project (values stored before `project_settings.check`
    refused bad ones are ignored)."""
    requeue = settings.get("requeue_lost") is True
    raw_retries = settings.get("max_retries")
    retries = _count(raw_retries) if is_count(raw_retries) else MAX_RETRIES_DEFAULT
    runtime = settings.get("max_runtime")
    runtime_ms = None
    if is_number(runtime) and runtime > 0:
        runtime_ms = round(runtime * 1000)
    return LostPolicy(requeue, retries, runtime_ms)


def _count(value: Any) -> int:
    """A stored counter, 0 when absent or not a count."""
    return int(value) if is_count(value) else 0


def new_lease(
    worker_id: str, lease_id: str, now_ms: int, timeouts: Timeouts, policy: LostPolicy
) -> NewLease:
    runtime = None if policy.max_runtime_ms is None else now_ms + policy.max_runtime_ms
    return NewLease(worker_id, lease_id, now_ms, now_ms + timeouts.worker_ms, runtime)


def worker_expiry(now_ms: int, timeouts: Timeouts) -> int:
    """When a worker (and the leases a heartbeat renews) expires if it heartbeats now."""
    return now_ms + timeouts.worker_ms


def heartbeat_interval(timeouts: Timeouts) -> float:
    """Seconds a worker should wait between heartbeats."""
    return timeouts.worker_ms * HEARTBEAT_FRACTION / 1000


class Due(enum.Enum):
    """What the reaper must do with a lease."""

    #: the worker stopped heartbeating: finish (lost) or requeue the job
    EXPIRED = "expired"
    #: a stop's deadline passed: finish the job with the stop's expiry reason
    STOP_EXPIRED = "stop_expired"
    #: the project's max_runtime passed: ask the worker to stop
    TIME_LIMIT = "time_limit"


def due(lease: Lease, now_ms: int) -> Due | None:
    """The reaper's action on `lease` at `now_ms`, or None. A lost worker comes first:
    its job is lost whatever else was asked of it."""
    if lease.expires_ms <= now_ms:
        return Due.EXPIRED
    if lease.stop_deadline_ms is not None and lease.stop_deadline_ms <= now_ms:
        return Due.STOP_EXPIRED
    if (lease.stop_deadline_ms is None and lease.runtime_deadline_ms is not None
            and lease.runtime_deadline_ms <= now_ms):
        return Due.TIME_LIMIT
    return None


def time_limit_stop(now_ms: int, timeouts: Timeouts) -> Stop:
    return Stop(TIME_LIMIT_REASON, now_ms + timeouts.cancel_ms, TIME_LIMIT_REASON)


def cancel_stop(cancel_requested_ms: int, timeouts: Timeouts) -> Stop:
    """A cancel of a running job: the hosted service gives the runner `cancel_timeout`."""
    return Stop(CANCELLED, cancel_requested_ms + timeouts.cancel_ms, CANCEL_TIMEOUT_REASON)


class LostOutcome(enum.Enum):
    REQUEUE = "requeue"
    FINISH = "finish"


def lost_outcome(policy: LostPolicy, meta: dict[str, Any]) -> LostOutcome:
    """Requeue a lost job while the project asks for it and retries remain."""
    if policy.requeue and _count(meta.get(RETRIES_FIELD)) < policy.max_retries:
        return LostOutcome.REQUEUE
    return LostOutcome.FINISH


def requeued_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a lost job going back to pending: one more retry, and no trace of
    the lost run's claim, stop, stats or truncated records (the next claim and run record
    their own)."""
    out = {k: v for k, v in meta.items() if k not in _RUN_FIELDS}
    out[RETRIES_FIELD] = _count(meta.get(RETRIES_FIELD)) + 1
    return out


#: the records of a lost run that a requeue removes with it (the backends delete their
#: chunks and heads in the requeue's transaction): writes are idempotent per index, so
#: records kept from the lost run would make the next run's writes of the same indices
#: silently dropped
REQUEUE_CLEARS: tuple[Kind, ...] = tuple(Kind)

_RUN_FIELDS = frozenset({
    "cancel_requested_time", "cancelled_by", "worker_id", "lease_id", "scrapystats",
    *(kind.truncated_field for kind in REQUEUE_CLEARS),
})


def requeued(meta: dict[str, Any], take: changes.Take) -> changes.Change:
    """A lost job's change back to pending, at the next position (`take`)."""
    return changes.Change(requeued_meta(meta), State.PENDING, take())


def needs_grace(last_tick_ms: int, now_ms: int, gap_ms: int) -> bool:
    """Nobody reaped for longer than `gap_ms`: the database was out of reach or no server
    ran, so no worker could heartbeat either."""
    return now_ms - last_tick_ms > gap_ms


class Action(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class JobAnswer:
    """The heartbeat's answer for one job."""

    key: JobKey
    action: Action
    #: the close_reason the worker should finish the job with (None: do not finish it,
    #: it is not yours any more)
    reason: str | None = None
    message: str | None = None
    #: of a `continue`: the run and lease id of the job's metadata (`claim_of`), for a
    #: fresh token of the run (a crawl may outlive the token it was claimed with)
    run: tuple[int | None, str | None] | None = None

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": str(self.key), "action": self.action.value}
        if self.action is Action.STOP:
            out["finish"] = self.reason is not None
            out["reason"] = self.reason if self.reason is not None else "not_leased"
        if self.message:
            out["message"] = self.message
        return out


def heartbeat_job(
    key: JobKey, lease: Lease | None, worker_id: str, running: bool,
    meta: dict[str, Any], now_ms: int, timeouts: Timeouts,
) -> tuple[JobAnswer, Stop | None]:
    """The answer for one job a worker reports, and a stop to record on its lease (None:
    nothing new). `lease` is the job's lease, whoever holds it; `meta` the job's metadata
    (empty when the job is gone)."""
    cancel = meta.get("cancel_requested_time")
    cancel_requested_ms = cancel if isinstance(cancel, int) else None
    if lease is None or lease.worker_id != worker_id or not running:
        why = ("not leased to this worker (finished, requeued, lost, or another worker's):"
               " stop it and do not report it")
        return JobAnswer(key, Action.STOP, None, f"job {key} is {why}"), None
    if lease.stop_reason is not None:
        return JobAnswer(key, Action.STOP, lease.stop_reason), None
    if cancel_requested_ms is not None:
        stop = cancel_stop(cancel_requested_ms, timeouts)
        return JobAnswer(key, Action.STOP, stop.reason), stop
    if lease.runtime_deadline_ms is not None and lease.runtime_deadline_ms <= now_ms:
        stop = time_limit_stop(now_ms, timeouts)
        return JobAnswer(key, Action.STOP, stop.reason), stop
    return JobAnswer(key, Action.CONTINUE, run=claim_of(meta)), None


# -- the run a job token belongs to ------------------------------------------------------

#: the close_reasons the reaper finishes a job with: the run was taken from its worker
REAPER_REASONS = frozenset({LOST, CANCEL_TIMEOUT_REASON, TIME_LIMIT_REASON})


@dataclass(frozen=True, slots=True)
class Claim:
    """The run of a job that a job token was issued for: the `running_time` of that run,
    and the id of the lease a worker claimed it with (None: `startjob` without a worker
    id, or a push of a running job; the claim records it in the job's metadata as
    `lease_id`, next to `worker_id`). A run ends for its token when the job is put back to
    pending, claimed again, finished by the reaper or deleted. A push of a running job
    names no run (`run` None): nothing but a deletion ends it. A token made before tokens
    named their run (`legacy`) is judged by when it was issued (`issued_ms`, whole
    seconds: a run that started a second or more later is another one)."""

    run: int | None
    lease_id: str | None
    issued_ms: int
    legacy: bool = False

    @property
    def may_be_taken(self) -> bool:
        """Whether the run may be taken from its claimer while the token lives: only a
        leased run is (a run without a lease is never requeued nor finished by the
        reaper); a token of the old format may be of either kind."""
        return self.lease_id is not None or self.legacy


def claim_of(meta: dict[str, Any]) -> tuple[int | None, str | None]:
    """The run (`running_time`) and lease id of a running job's metadata, for its token."""
    run = meta.get("running_time")
    lease = meta.get("lease_id")
    return (run if isinstance(run, int) else None,
            lease if isinstance(lease, str) and lease else None)


def _requeued(key: JobKey) -> str:
    return (f"job {key} was put back to pending after its worker was declared lost:"
            " the run this token was issued for is over")


def _claimed_again(key: JobKey) -> str:
    return (f"job {key} was claimed again after its worker was declared lost: this"
            " token is for an earlier run, and the current run has its own token")


def run_refusal(key: JobKey, state: State | None, running_time: int | None,
                run: int | None) -> str | None:
    """Inside the transaction of a write by a job token: why it must not land, given the
    job's `state` and the `running_time` of its current run (`run`: the run the token
    names; None, a write bound to no run, always lands). `token_refusal` judged the token
    moments before, but the run may have been taken meanwhile: requeued, or requeued and
    claimed again. A finished or deleted job is refused by the write's own rules."""
    if run is None:
        return None
    if state is State.PENDING:
        return _requeued(key)
    if state is State.RUNNING and running_time != run:
        return _claimed_again(key)
    return None


def token_refusal(key: JobKey, meta: dict[str, Any] | None, claim: Claim) -> str | None:
    """Why the token of `claim` no longer reaches `key`'s job (`meta`: its metadata now,
    None when it is gone), or None when it does. A lost worker's token must never change
    the job once its run was taken away: requeued, claimed by another worker, or finished
    by the server."""
    state = None if meta is None else meta.get("state")
    if meta is None or state == State.DELETED.label:
        return f"job {key} was deleted: its token no longer works"
    if state == State.PENDING.label:
        return _requeued(key)
    run = meta.get("running_time")
    if claim.legacy:  # a token of the old format: its run started no later than it was issued
        other_run = not isinstance(run, int) or run >= claim.issued_ms + 1000
    else:
        other_run = claim.run is not None and run != claim.run
    if other_run or (claim.lease_id is not None and meta.get("lease_id") != claim.lease_id):
        return _claimed_again(key)
    if (state == State.FINISHED.label and meta.get("completed_by") == REAPER
            and meta.get("close_reason") in REAPER_REASONS):
        return (f"job {key} was finished by the server ({meta.get('close_reason')}): its"
                " worker was declared lost or did not stop in time, and the run this token"
                " was issued for is over")
    return None
