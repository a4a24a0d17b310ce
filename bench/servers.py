"""Start, watch and stop the servers under test (jobq, baseline, Scrapyd).

Every server listens on 127.0.0.1 only, runs in its own process group (so a
stop also ends its children) and is registered, so that `stop_all()` ends
everything the harness started, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
_RUNNING: list[Server] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_path: str, timeout: float = 60.0) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        _RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log}")

    def pids(self) -> list[int]:
        """The server process and its descendants (a server may fork workers)."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_bytes(self) -> int:
        """Resident memory now (VmRSS), summed over the process tree."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
        if self in _RUNNING:
            _RUNNING.remove(self)


def stop_all() -> None:
    for server in list(reversed(_RUNNING)):
        server.stop()


def find_jobq(explicit: str | None) -> list[str]:
    """The `jobq` command: --jobq, else beside this Python, else on PATH."""
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).parent / "jobq"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("jobq")
    if found:
        return [found]
    raise SystemExit("no `jobq` command: `pip install .` at the repo root, or pass --jobq")


def start_jobq(
    jobq: list[str], db: str, admin_key: str, log: Path, port: int | None = None
) -> Server:
    port = port or free_port()
    argv = [*jobq, "serve", "--host", HOST, "--port", str(port), "--db", db]
    # not from the repo root: there `python -m jobq` imports the checkout's code before
    # anything on PYTHONPATH, and a peer given as `env PYTHONPATH=OLD python -m jobq`
    # would be this checkout again
    server = Server("jobq", argv, port, log, env={"JOBQ_ADMIN_KEY": admin_key},
                    cwd=log.parent.resolve())
    return server.start("/system/ts")


def start_baseline(log: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.baseline_app", "--host", HOST, "--port", str(port)]
    root = Path(__file__).resolve().parent.parent
    return Server("baseline", argv, port, log, cwd=root).start("/lines")


def sqlite_bytes(path: Path) -> int:
    """The database file plus its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
