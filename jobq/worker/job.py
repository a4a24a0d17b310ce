"""One claimed job, from its start to its reported outcome: its process, its streams of
records on their way to the server, its stats and its outcome, delivered last."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from jobq.worker import outcome, pipe
from jobq.worker.api import Api, JobAuth, Refused, Unavailable
from jobq.worker.pipe import Message
from jobq.worker.process import JobProcess, Launch, WarmPool
from jobq.worker.spool import Budget, Stream

log = logging.getLogger(__name__)
T = TypeVar("T")

#: records and bytes of one batch (as the official batch writer: 1000 records, 1 MiB)
BATCH_RECORDS = 1000
BATCH_BYTES = 1024 * 1024
#: seconds between two `scrapystats` updates of a running job
STATS_INTERVAL = 30.0
#: retries of a call the server could not take: first and longest pause (seconds)
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
_KIND_OF = {pipe.ITM: "items", pipe.LOG: "logs", pipe.REQ: "requests"}


class Discarded(Exception):
    """The job is not this worker's any more: nothing of it is reported."""


class JobRun:
    def __init__(self, api: Api, launch: Launch, budget: Budget, kill_timeout: float,
                 on_done: Callable[[JobRun], None], warm: WarmPool | None = None) -> None:
        self.api = api
        self.key = str(launch.job["key"])
        #: the job's writes go with its token, bound to this run (see `jobq.worker.api`)
        self.auth: JobAuth = None
        self.renew_token(launch.job.get("auth"))
        self.units = max(1, int(launch.job.get("units") or 1))
        self.kill_timeout = kill_timeout
        self.on_done = on_done
        self.process = JobProcess(launch, self._deliver, warm)
        self.streams: dict[str, Stream] = {}
        self.budget = budget
        self.stats: Any = None
        self._stats_sent: Any = None
        self.fin: str | None = None
        self.stop_reason: str | None = None
        self.discarded = False
        self.exited = threading.Event()
        self.done = threading.Event()
        self.close_reason: str | None = None
        self._wake = threading.Event()

    # -- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        """Start the job's process (call from the worker's main thread: see JobProcess)."""
        self.process.prepare()
        self.streams = {kind: Stream(self.process.job_dir, kind, self.budget, self._wake)
                        for kind in _KIND_OF.values()}
        self.process.spawn()
        threading.Thread(target=self._supervise, daemon=True, name=f"{self.key} wait").start()
        threading.Thread(target=self._upload, daemon=True, name=f"{self.key} upload").start()

    def end_unstarted(self, reason: str) -> None:
        """Report `reason` for a job whose process never ran (stopped while it waited
        for slots, or it could not start)."""
        self.close_reason = reason
        self.exited.set()
        threading.Thread(target=self._upload, daemon=True, name=f"{self.key} upload").start()

    def stop(self, reason: str) -> None:
        """Stop the job (SIGTERM, SIGKILL after the kill timeout); it ends with `reason`."""
        if self.exited.is_set() or self.stop_reason is not None:
            return  # a second SIGTERM would make Scrapy stop hard
        self.stop_reason = reason
        log.info("job %s: stopping (%s)", self.key, reason)
        if self.process.pid is not None:  # else it never starts (see Worker)
            self.process.terminate(self.kill_timeout)

    def renew_token(self, token: Any) -> None:
        """Take the job token of this run the claim or a heartbeat handed out (the
        heartbeat's keeps a long crawl's writes going past the first one's lifetime)."""
        if isinstance(token, str) and token:
            self.auth = (self.key, token)

    def discard(self, why: str) -> None:
        """The server gave the job to no one or someone else: stop it, report nothing."""
        if not self.discarded:
            log.warning("job %s: %s", self.key, why)
        self.discarded = True
        self.stop(outcome.SHUTDOWN)
        self._wake.set()

    def kill(self) -> None:
        self.process.kill()

    # -- what the pipe delivers ------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        kind = _KIND_OF.get(message.cmd)
        if kind is not None:
            self.streams[kind].append(message.raw)
        elif message.cmd == pipe.STA:
            self.stats = message.value().get("stats")
        elif message.cmd == pipe.FIN:
            self.fin = str(message.value().get("outcome") or "") or None

    def _supervise(self) -> None:
        code = self.process.wait()
        self.close_reason = outcome.close_reason(self.fin, code, self.stop_reason)
        if code != 0 and self.fin is None:
            self.streams["logs"].append(pipe.log_message(
                pipe.ERROR, f"[jobq worker] the job's process exited with code {code}"
                " before reporting an outcome").raw)
        log.info("job %s: process exited with %s: %s", self.key, code, self.close_reason)
        self.exited.set()
        self._wake.set()

    # -- delivery --------------------------------------------------------------------------

    def _upload(self) -> None:
        try:
            self._deliver_all()
        except Discarded:
            log.info("job %s: discarded, nothing reported", self.key)
        except Exception:
            log.exception("job %s: delivery failed", self.key)
            self.stop(outcome.FAILED)  # nothing reads its output any more
        finally:
            # a discarded job may still be stopping: its slots stay taken until it is gone
            self.exited.wait()
            for stream in self.streams.values():
                stream.close()
                while stream.pending:  # free the budget of what will never be sent
                    batch = stream.batch(BATCH_RECORDS, BATCH_BYTES)
                    if batch is None:
                        break
                    stream.ack(batch)
            self.process.cleanup()
            self.done.set()
            self.on_done(self)

    def _deliver_all(self) -> None:
        last_stats = time.monotonic()
        while True:
            self._wake.clear()
            sent = self._send_batches()
            if time.monotonic() - last_stats >= STATS_INTERVAL:
                self._send_stats()
                last_stats = time.monotonic()
            if sent:
                continue
            if self.exited.is_set() and not any(s.pending for s in self.streams.values()):
                break
            self._wake.wait(1.0)
        self._send_stats()
        reason = self.close_reason or outcome.FAILED
        try:
            self._retry(lambda: self.api.finish(self.key, reason, self.auth))
        except Refused as exc:  # e.g. the server finished it already (lost, cancel_timeout)
            log.warning("job %s: outcome %s refused: %s", self.key, reason, exc)
            return
        log.info("job %s: finished, %s", self.key, reason)

    def _send_batches(self) -> bool:
        sent = False
        for kind, stream in self.streams.items():
            batch = stream.batch(BATCH_RECORDS, BATCH_BYTES)
            if batch is None:
                continue
            try:
                self._retry(functools.partial(self.api.write_batch, kind, self.key,
                                              batch.start, batch.lines, self.auth))
            except Refused as exc:
                # the server will never take these (a cap, a bad record): say so, move on
                log.error("job %s: %s %d..%d refused: %s", self.key, kind, batch.start,
                          batch.start + len(batch.lines) - 1, exc)
            stream.ack(batch)
            sent = True
        return sent

    def _send_stats(self) -> None:
        stats = self.stats
        if stats is None or stats == self._stats_sent:
            return
        try:
            self._retry(lambda: self.api.set_meta(self.key, "scrapystats", stats, self.auth))
        except Refused as exc:
            log.error("job %s: scrapystats refused: %s", self.key, exc)
        self._stats_sent = stats

    def _retry(self, call: Callable[[], T]) -> T:
        """`call` until the server takes it; pauses grow while it is out of reach. A job
        token refused means the run was taken from this worker (declared lost, then
        requeued or claimed by another): the job is discarded, as a heartbeat's `stop`
        with `finish: false` does, and nothing more of it is sent."""
        pause = BACKOFF_FIRST
        while True:
            if self.discarded:
                raise Discarded
            try:
                return call()
            except Refused as exc:
                if self.auth is None or not exc.run_taken:
                    raise
                self.discard(f"the server refused this run's writes: {exc}")
                raise Discarded from exc
            except Unavailable as exc:
                log.warning("job %s: server unavailable (%s); retrying in %.1fs",
                            self.key, exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, BACKOFF_MAX)


def settings_message(project_settings: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """`SHUB_SETTINGS`: the project's settings, then the job's (`job_settings` wins)."""
    job_settings = job.get("job_settings")
    if isinstance(job_settings, str):  # pushed as a JSON string by some clients
        try:
            job_settings = orjson.loads(job_settings)
        except orjson.JSONDecodeError:
            job_settings = None
    return {
        "project_settings": project_settings,
        "job_settings": job_settings if isinstance(job_settings, dict) else {},
    }


def job_dir_root(workdir: Path) -> Path:
    return workdir / "jobs"
