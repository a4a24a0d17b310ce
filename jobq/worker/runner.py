"""The worker: registers, claims jobs while it has free slots, runs each (`JobRun`),
heartbeats their leases, acts on the server's answers, and stops cleanly.

Threads: the main thread starts job processes (a job's process dies with the thread that
started it, see `process`) and handles shutdown; one thread claims; one heartbeats; each
job has its own (output readers, a supervisor, an uploader).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from jobq.worker import outcome
from jobq.worker.api import Api, ApiError, Unavailable
from jobq.worker.job import JobRun, settings_message
from jobq.worker.process import Launch, WarmPool
from jobq.worker.spiders import SpiderListError, list_spiders
from jobq.worker.spool import Budget

log = logging.getLogger(__name__)

#: seconds a claim waits on the server when the worker serves one project (several
#: projects: a short wait each, in turn). Bounds how long a shutdown waits for a claim.
CLAIM_WAIT_ONE, CLAIM_WAIT_MANY = 5, 1
#: outcome of jobs the worker stopped because it could not renew their leases
LEASE_LOST = "lost"


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    apikey: str
    projects: tuple[int, ...]
    project_dir: Path
    workdir: Path
    python: str
    name: str = socket.gethostname()
    botgroup: str | None = None
    slots: int = 1
    memory_per_unit: int = 950
    kill_timeout: float = 60.0
    drain_timeout: float = 300.0
    buffer_bytes: int = 256 * 1024 * 1024
    #: keep an interpreter with Scrapy imported ready for the next job
    warm: bool = True


class Worker:
    def __init__(self, options: Options, api: Api | None = None) -> None:
        self.options = options
        self.api = api or Api(options.url, options.apikey)
        self.budget = Budget(options.buffer_bytes)
        self.worker_id = ""
        self.heartbeat_interval = 10.0
        self.worker_timeout = 60.0
        self.runs: dict[str, JobRun] = {}
        self.used = 0
        self._cond = threading.Condition()
        #: claimed jobs not started yet (each already heartbeated: it is in `runs`)
        self._claimed: queue.Queue[JobRun] = queue.Queue()
        self._unstarted = 0
        self._stopping = threading.Event()
        self._signals = 0
        self._settings: dict[int, dict[str, Any]] = {}
        self._list_spiders = threading.Event()
        self.spiders: list[str] = []
        self.warm = WarmPool(options.python, options.project_dir) if options.warm else None

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Until SIGTERM/SIGINT (then: drain, stop, report, 0)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, lambda signum, frame: self._list_spiders.set())
        self._register()
        self._publish_spiders()
        if self.warm is not None:
            self.warm.fill()
        threads = [threading.Thread(target=self._heartbeats, daemon=True, name="heartbeat"),
                   threading.Thread(target=self._claims, daemon=True, name="claims")]
        for thread in threads:
            thread.start()
        while not self._stopping.is_set():
            self._start_claimed(0.2)
            if self._list_spiders.is_set():
                self._publish_spiders()
        log.info("worker: stopping; no more claims")
        threads[1].join()  # its last claim may bring a job: that job runs too
        while not self._claimed.empty():
            self._start_claimed(0)
        self._drain()
        with self._cond:
            runs = list(self.runs.values())
        for run in runs:
            run.done.wait()
        if self.warm is not None:
            self.warm.close()
        try:
            self.api.unregister(self.worker_id)
        except ApiError as exc:
            log.warning("worker: unregister: %s", exc)
        log.info("worker %s: stopped", self.worker_id)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:  # a second signal: stop at once, leaving nothing behind
            for run in list(self.runs.values()):
                run.kill()
            if self.warm is not None:
                self.warm.close()
            os._exit(1)
        self._stopping.set()

    def _register(self) -> None:
        info = {"name": self.options.name, "host": socket.gethostname(),
                "slots": self.options.slots, "projects": list(self.options.projects),
                "botgroups": [self.options.botgroup] if self.options.botgroup else []}
        pause = 0.5
        while True:
            try:
                answer = self.api.register(info)
                break
            except Unavailable as exc:
                log.warning("worker: cannot register yet (%s)", exc)
                if self._stopping.wait(pause):
                    raise SystemExit(0) from None
                pause = min(pause * 2, 10.0)
        self.worker_id = str(answer["id"])
        self.heartbeat_interval = float(answer.get("heartbeat_interval") or 10.0)
        self.worker_timeout = float(answer.get("worker_timeout") or 60.0)
        log.info("worker %s registered (%s, %d slots, projects %s)", self.worker_id,
                 self.options.name, self.options.slots, list(self.options.projects))

    def _publish_spiders(self) -> None:
        """List the project's spiders and make them known to the server (at start and on
        SIGHUP, after a deploy)."""
        self._list_spiders.clear()
        try:
            names = list_spiders(self.options.python, self.options.project_dir)
        except SpiderListError as exc:
            log.error("worker: cannot list the project's spiders: %s", exc)
            return
        try:
            self.api.register_spiders(self.worker_id, names)
        except ApiError as exc:
            log.warning("worker: cannot register the spiders %s: %s", names, exc)
        log.info("worker: spiders %s", ", ".join(names))
        self.spiders = names

    def _drain(self) -> None:
        """Let running jobs finish for `drain_timeout`, then stop them (`shutdown`)."""
        deadline = time.monotonic() + self.options.drain_timeout
        with self._cond:
            while any(not r.exited.is_set() for r in self.runs.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            running = [r for r in self.runs.values() if not r.exited.is_set()]
        for run in running:
            run.stop(outcome.SHUTDOWN)

    # -- claims and starts -------------------------------------------------------------------

    def _claims(self) -> None:
        projects = self.options.projects
        wait = CLAIM_WAIT_ONE if len(projects) == 1 else CLAIM_WAIT_MANY
        turn, pause = 0, 0.2
        while not self._stopping.is_set():
            with self._cond:  # claim only with a free slot and nothing waiting to start
                while not self._stopping.is_set() and (
                        self.used + self._unstarted >= self.options.slots):
                    self._cond.wait(0.5)
            if self._stopping.is_set():
                return
            project = projects[turn % len(projects)]
            turn += 1
            try:
                job = self.api.claim(project, self.worker_id, self.options.botgroup, wait)
                pause = 0.2
            except ApiError as exc:
                log.warning("worker: claim in project %d: %s", project, exc)
                self._stopping.wait(pause)
                pause = min(pause * 2, 10.0)
                continue
            if job is not None:
                with self._cond:
                    self._unstarted += 1
                self._claimed.put(self._new_run(job))

    def _start_claimed(self, timeout: float) -> None:
        try:
            run = self._claimed.get(timeout=timeout) if timeout else self._claimed.get_nowait()
        except queue.Empty:
            return
        with self._cond:  # a job of N units waits for N free slots (or runs alone)
            while self.used and self.used + run.units > self.options.slots:
                self._cond.wait(0.5)
            self.used += run.units
            self._unstarted -= 1
        if run.stop_reason is not None:  # cancelled while it waited: never started
            run.end_unstarted(run.stop_reason)
            return
        try:
            run.start()
        except OSError as exc:
            log.error("job %s: cannot start: %s", run.key, exc)
            run.end_unstarted(outcome.FAILED)
            return
        log.info("job %s: started (%s, %d unit(s), pid %s)", run.key,
                 run.process.launch.job.get("spider"), run.units, run.process.pid)

    def _new_run(self, job: dict[str, Any]) -> JobRun:
        """The run of a claimed job, heartbeated from now on (also while it waits)."""
        key = str(job["key"])
        project = int(key.split("/", 1)[0])
        units = max(1, int(job.get("units") or 1))
        launch = Launch(
            job=job, project_dir=self.options.project_dir, python=self.options.python,
            workdir=self.options.workdir / "jobs",
            memory_limit_mb=units * self.options.memory_per_unit,
            settings=settings_message(self._project_settings(project), job),
            storage_url=self.api.url,
        )
        run = JobRun(self.api, launch, self.budget, self.options.kill_timeout, self._done,
                     self.warm)
        with self._cond:
            self.runs[key] = run
        return run

    def _project_settings(self, project: int) -> dict[str, Any]:
        try:
            self._settings[project] = self.api.project_settings(project)
        except ApiError as exc:
            log.warning("project %d settings: %s (using the last known)", project, exc)
        return self._settings.get(project, {})

    def _done(self, run: JobRun) -> None:
        with self._cond:
            self.runs.pop(run.key, None)
            self.used -= run.units
            self._cond.notify_all()

    # -- heartbeats ----------------------------------------------------------------------------

    def _heartbeats(self) -> None:
        last_ok = time.monotonic()
        while True:
            with self._cond:
                runs = dict(self.runs)
            try:
                answer = self.api.heartbeat(self.worker_id, list(runs))
                last_ok = time.monotonic()
                self._act_on(answer, runs)
            except ApiError as exc:
                log.warning("worker: heartbeat: %s", exc)
                if time.monotonic() - last_ok > self.worker_timeout:
                    # the server counts these jobs lost and may give them to another
                    # worker: they must not run twice at once
                    for run in runs.values():
                        run.stop(LEASE_LOST)
            if self._stopping.is_set() and not runs:
                return
            time.sleep(self.heartbeat_interval)

    def _act_on(self, answer: dict[str, Any], runs: dict[str, JobRun]) -> None:
        self.heartbeat_interval = float(answer.get("heartbeat_interval") or
                                        self.heartbeat_interval)
        for job in answer.get("jobs") or []:
            run = runs.get(str(job.get("key")))
            if run is None:
                continue
            if job.get("action") != "stop":
                run.renew_token(job.get("auth"))
                continue
            if job.get("finish"):
                run.stop(str(job.get("reason") or outcome.CANCELLED))
            else:
                run.discard(str(job.get("message") or "not leased to this worker any more"))


__all__ = ("Options", "Worker")
