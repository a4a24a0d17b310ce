"""A hypothesis model of the queue rules with leases and expiries: random sequences of
pushes, registrations, leased claims, heartbeats, cancels, finishes and the passing of
time (the reaper ticking each second) run against the real SQLite storage and a plain
Python model; states, close reasons, retries and heartbeat answers must agree.

Time is a `ManualClock`; nothing sleeps. The `cancel_requested_time` of a cancel is
restamped with the manual clock."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from jobq import errors
from jobq.core.credentials import JobTokens, Principal
from jobq.core.queue import JobQueue
from jobq.core.workers import Reaper, Wakeups, Workers
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey
from jobq.domain.leases import Timeouts
from jobq.storage.sqlite import SqliteStorage

ADMIN = Principal(name="admin", is_admin=True)
P = 5
WORKER_S, CANCEL_S = 10, 15


@dataclass
class ModelJob:
    key: str
    state: str = "pending"
    close_reason: str | None = None
    retries: int = 0
    worker: int | None = None
    expires: float = 0.0
    cancel_at: float | None = None  # ms, as stamped by the storage
    stop_reason: str | None = None
    stop_deadline: float | None = None
    expiry_reason: str | None = None


@dataclass
class ModelWorker:
    expires: float
    lost: bool = False
    ids: list[str] = field(default_factory=list)


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.storage = SqliteStorage(Path(self.folder.name) / "db.sqlite3")
        self.run(self.storage.open())
        self.clock = ManualClock(now_ms=time.time_ns() // 1_000_000)
        timeouts = Timeouts.of_seconds(WORKER_S, CANCEL_S)
        wakeups = Wakeups()
        self.queue = JobQueue(self.storage, JobTokens("a-model-signing-secret-32-bytes!!"), 1000)
        self.workers = Workers(self.storage, self.queue, self.clock, timeouts, wakeups)
        self.reaper = Reaper(self.storage, self.clock, timeouts, wakeups)
        self.run(self.reaper.tick())  # the first tick of a fresh database is grace
        self.jobs: dict[str, ModelJob] = {}
        self.pending: list[str] = []  # claim order
        self.model_workers: list[ModelWorker] = []
        self.worker_ids: list[str] = []
        self.requeue = False
        self.max_retries = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.storage.close())
        self.loop.close()
        self.folder.cleanup()

    def now(self) -> int:
        return self.clock.now_ms()

    @initialize(requeue=st.booleans(), max_retries=st.integers(0, 2))
    def project_settings(self, requeue: bool, max_retries: int) -> None:
        self.requeue, self.max_retries = requeue, max_retries
        self.run(self.storage.update_settings(
            P, {"requeue_lost": requeue, "max_retries": max_retries}))
        for _ in range(2):
            self.register()
        self.push(3)

    # -- actions ----------------------------------------------------------------------------

    @rule(n=st.integers(1, 3))
    def push(self, n: int) -> None:
        for answer in self.run(self.queue.push(ADMIN, P, [{"spider": "s"}] * n)):
            self.jobs[answer["key"]] = ModelJob(answer["key"])
            self.pending.append(answer["key"])

    @rule()
    def register(self) -> None:
        answer = self.run(self.workers.register(ADMIN, {"name": "w"}))
        self.worker_ids.append(answer["id"])
        self.model_workers.append(ModelWorker(self.now() + WORKER_S * 1000))

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        if not self.worker_ids:
            return
        index = data.draw(st.integers(0, len(self.worker_ids) - 1))
        worker = self.model_workers[index]
        try:
            job = self.run(self.workers.start(
                ADMIN, P, {"worker_id": self.worker_ids[index]}, 0))
        except errors.Conflict:
            assert worker.lost, "only a lost worker is refused"
            return
        assert not worker.lost
        if not self.pending:
            assert job is None
            return
        expected = self.pending.pop(0)
        assert job is not None and job["key"] == expected
        model = self.jobs[expected]
        model.state, model.worker = "running", index
        model.expires = self.now() + WORKER_S * 1000
        model.cancel_at = model.stop_reason = model.stop_deadline = None
        model.expiry_reason = None

    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        """A heartbeat naming any jobs: its own, others', finished ones."""
        if not self.worker_ids:
            return
        index = data.draw(st.integers(0, len(self.worker_ids) - 1))
        keys = data.draw(st.lists(st.sampled_from(sorted(self.jobs)), unique=True)
                         if self.jobs else st.just([]))
        self.beat(index, keys)

    def own_jobs(self, index: int) -> list[str]:
        return sorted(k for k, m in self.jobs.items() if m.worker == index
                      and m.state == "running")

    def beat(self, index: int, keys: list[str]) -> None:
        answer = self.run(self.workers.heartbeat(ADMIN, self.worker_ids[index], {"jobs": keys}))
        now = self.now()
        worker = self.model_workers[index]
        worker.expires, worker.lost = now + WORKER_S * 1000, False
        got = {a["key"]: a for a in answer["jobs"]}
        for key in keys:
            model = self.jobs[key]
            if model.state != "running" or model.worker != index:
                assert (got[key]["action"], got[key]["finish"]) == ("stop", False), key
                continue
            model.expires = max(model.expires, now + WORKER_S * 1000)
            if model.stop_reason is None and model.cancel_at is not None:
                model.stop_reason, model.expiry_reason = "cancelled", "cancel_timeout"
                model.stop_deadline = model.cancel_at + CANCEL_S * 1000
            if model.stop_reason is None:
                assert got[key]["action"] == "continue", key
            else:
                assert (got[key]["action"], got[key]["reason"]) == ("stop", model.stop_reason)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if not self.jobs:
            return
        key = data.draw(st.sampled_from(sorted(self.jobs)))
        count = self.run(self.queue.cancel(ADMIN, P, [{"key": key}], None))
        model = self.jobs[key]
        assert count == (model.state in ("pending", "running"))
        if model.state == "pending":
            model.state, model.close_reason = "finished", "cancelled"
            self.pending.remove(key)
        elif model.state == "running" and model.cancel_at is None:
            # the storage stamps the cancel with the real time: restamp it with the manual
            # clock's (a client may set this field), so that runs replay exactly
            model.cancel_at = self.now()
            self.run(self.storage.set_job_meta(JobKey.parse(key),
                                               {"cancel_requested_time": model.cancel_at}))

    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        running = sorted(k for k, m in self.jobs.items() if m.state == "running")
        if not running:
            return
        key = data.draw(st.sampled_from(running))
        self.run(self.queue.update(ADMIN, P, [{"key": key, "state": "finished",
                                              "close_reason": "finished"}]))
        model = self.jobs[key]
        model.state, model.close_reason, model.worker = "finished", "finished", None

    @rule(seconds=st.sampled_from([1, 2, 3, 7, 12]), beating=st.sets(st.integers(0, 2)))
    def elapse(self, seconds: int, beating: set[int]) -> None:
        """Time passes, second by second; the workers in `beating` heartbeat their own
        jobs every second, the others are silent (dead, or stuck)."""
        for _ in range(seconds):
            for index in sorted(beating):
                if index < len(self.worker_ids):
                    self.beat(index, self.own_jobs(index))
            self.clock.advance(1)
            self.run(self.reaper.tick())
            self.model_tick(self.now())

    def model_tick(self, now: int) -> None:
        for worker in self.model_workers:
            if worker.expires <= now:
                worker.lost = True
        # the reaper takes due leases by expiry, then key
        for key in sorted(self.jobs, key=lambda k: (self.jobs[k].expires, JobKey.parse(k))):
            model = self.jobs[key]
            if model.state != "running" or model.worker is None:
                continue
            if model.expires <= now:
                model.worker = None
                if self.requeue and model.retries < self.max_retries:
                    model.state, model.retries = "pending", model.retries + 1
                    model.cancel_at = None
                    self.pending.append(key)
                else:
                    model.state, model.close_reason = "finished", "lost"
            elif model.stop_deadline is not None and model.stop_deadline <= now:
                model.worker = None
                model.state, model.close_reason = "finished", model.expiry_reason

    # -- what must agree ----------------------------------------------------------------------

    @invariant()
    def same_jobs(self) -> None:
        for key, model in self.jobs.items():
            meta = self.run(self.storage.get_job_meta(JobKey.parse(key)))
            assert meta is not None
            seen = (meta["state"], meta.get("close_reason"), meta.get("retries", 0))
            assert seen == (model.state, model.close_reason, model.retries), key


LeaseMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None)
test_lease_model = LeaseMachine.TestCase
