"""`jobq worker` subprocesses for the tests, and a server with the routes they need."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests import helpers

PROJECT_DIR = Path(__file__).parent / "project"


def start_server(db_url: str, tmp_path: Path, worker_timeout: float,
                 cancel_timeout: float = 30) -> helpers.Server:
    """A `jobq serve` with short lease timeouts."""
    server = helpers.Server(db=db_url, log=tmp_path / "server.log", extra_args=[
        "--worker-timeout", str(worker_timeout), "--cancel-timeout", str(cancel_timeout)])
    return server.start()


@dataclass
class WorkerProcess:
    server: helpers.Server
    workdir: Path
    args: list[str] = field(default_factory=list)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    project_dir: Path = PROJECT_DIR

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
        self.log = self.workdir / "worker.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*helpers.jobq_command(), "worker", "--url", self.server.url,
                 "--apikey", self.server.admin_key, "--project-dir", str(self.project_dir),
                 "--workdir", str(self.workdir), "--log-level", "debug", *self.args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def job_pid(self, key: str) -> int | None:
        """The pid of the job's process, from the worker's log of its start."""
        found = re.search(rf"job {re.escape(key)}: started \(.*?pid (\d+)\)", self.text())
        return int(found.group(1)) if found else None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(10)


def push(http: httpx.Client, project: int, **job: Any) -> str:
    answer = http.post(f"/jobq/{project}/push", json=job)
    assert answer.status_code == 200, answer.text
    key: str = answer.json()["key"]
    return key


def meta(http: httpx.Client, key: str) -> dict[str, Any]:
    answer = http.get(f"/jobs/{key}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def wait_finished(http: httpx.Client, key: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = meta(http, key)
        if found.get("state") == "finished":
            return found
        assert time.monotonic() < deadline, f"job {key} not finished: {found}"
        time.sleep(0.1)


def wait_for(condition: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def crawl_pids() -> set[int]:
    """Processes running start-crawl or waiting to (warm interpreters), of any test: the
    caller compares before and after."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"sh_scrapy.crawl" in cmdline:
                pids.add(int(entry.name))
    return pids
