"""One job's process, run as Scrapy Cloud runs it (RUNNER.md): a fresh working directory,
a named pipe, `start-crawl` (scrapinghub-entrypoint-scrapy) with the job's environment,
in a process group of its own. What the job writes to the pipe, stdout (INFO) and stderr
(ERROR) reaches `deliver` as pipe messages, in one thread per stream.

No orphans: the job's process gets SIGKILL when the worker dies (`PR_SET_PDEATHSIG`,
Linux), and the whole group gets SIGKILL when the job's main process is gone.
"""

from __future__ import annotations

import codecs
import configparser
import contextlib
import ctypes
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from jobq.worker import pipe
from jobq.worker.pipe import Message

#: what `start-crawl` (the console script) runs, in the project's interpreter
START_CRAWL = "import sys; from sh_scrapy.crawl import main; sys.exit(main())"
#: stderr lines kept for the log of a job that failed
STDERR_TAIL = 20
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything a job's process needs, from the claim and the worker's options."""

    job: dict[str, Any]
    project_dir: Path
    python: str
    workdir: Path
    memory_limit_mb: int
    settings: dict[str, Any] = field(default_factory=dict)
    storage_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


def settings_module(project_dir: Path) -> str | None:
    """The settings module of a Scrapy project (`[settings] default` of scrapy.cfg)."""
    cfg = configparser.ConfigParser()
    cfg.read(project_dir / "scrapy.cfg")
    return cfg.get("settings", "default", fallback=None)


def job_auth(key: str, token: str) -> str:
    """`SHUB_JOBAUTH`: the hex of `"<jobkey>:<token>"`, as sh_scrapy computes it."""
    return codecs.encode(f"{key}:{token}".encode(), "hex_codec").decode()


def environment(launch: Launch, job_dir: Path, fifo: Path, base: dict[str, str]) -> dict[str, str]:
    """The job's environment (RUNNER.md, "Environment the runner gives the job process").

    The job and settings messages go in files of the job's directory (a form
    `SHUB_JOB_DATA`/`SHUB_SETTINGS` accept): spider arguments can outgrow the limit of
    one environment variable. The project is found through `PYTHONPATH` and
    `SCRAPY_SETTINGS_MODULE`, since the job runs in its own fresh directory."""
    env = {k: v for k, v in base.items() if not k.startswith(("SHUB_", "JOBQ_"))}
    key = str(launch.job["key"])
    (job_dir / "job.json").write_bytes(orjson.dumps(launch.job))
    (job_dir / "settings.json").write_bytes(orjson.dumps(launch.settings))
    env.update({
        "SHUB_JOB_DATA": str(job_dir / "job.json"),
        "SHUB_SETTINGS": str(job_dir / "settings.json"),
        "SHUB_FIFO_PATH": str(fifo),
        "SHUB_JOBKEY": key,
        "SHUB_JOBAUTH": job_auth(key, str(launch.job.get("auth", ""))),
        "SHUB_STORAGE": launch.storage_url,
        "SHUB_JOB_MEMORY_LIMIT": str(launch.memory_limit_mb),
        "PYTHONUNBUFFERED": "1",
    })
    project = str(launch.project_dir.resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH")) if p)
    module = settings_module(launch.project_dir)
    if module:
        env["SCRAPY_SETTINGS_MODULE"] = module
    env.update(launch.extra_env)
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the worker dies (even by `kill -9`)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the worker died before prctl took effect
            os._exit(1)


class JobProcess:
    """A running job. `start()` returns once the process runs; `wait()` returns its exit
    code once the process and all of its output are through.

    Start it from a thread that lives as long as the worker: Linux sends the parent-death
    signal when the *thread* that forked the child ends."""

    def __init__(self, launch: Launch, deliver: Callable[[Message], None],
                 warm: WarmPool | None = None) -> None:
        self.launch = launch
        self.warm = warm
        self.deliver = deliver
        self.key = str(launch.job["key"])
        self.job_dir = launch.workdir / self.key.replace("/", "-")
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.process: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._keep_open: int | None = None
        self._kill_timer: threading.Timer | None = None
        self.started = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        return [self.launch.python, "-c", START_CRAWL]

    def start(self) -> None:
        self.prepare()
        self.spawn()

    def prepare(self) -> None:
        """The job's fresh working directory."""
        if self.job_dir.exists():  # a job run again (requeued) starts afresh
            shutil.rmtree(self.job_dir)
        self.job_dir.mkdir(parents=True, mode=0o700)

    def spawn(self) -> None:
        fifo = self.job_dir / "pipe"
        os.mkfifo(fifo, stat.S_IRUSR | stat.S_IWUSR)
        # Open the read end without waiting for a writer, then hold a write end ourselves:
        # reads block until the job writes, instead of ending at once, and a job that dies
        # before opening the pipe cannot leave the reader waiting forever.
        read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._keep_open = os.open(fifo, os.O_WRONLY)
        os.set_blocking(read_fd, True)
        env = environment(self.launch, self.job_dir, fifo, dict(os.environ))
        self.started = time.monotonic()
        try:
            self.process = self._warm_process(env) or subprocess.Popen(
                self.command(), cwd=self.job_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError:
            os.close(read_fd)
            self._close_keep_open()
            raise
        assert self.process.stdout is not None and self.process.stderr is not None
        self._spawn(pipe.read_messages, read_fd, self.deliver)
        self._spawn(self._read_output, self.process.stdout, pipe.INFO, None)
        self._spawn(self._read_output, self.process.stderr, pipe.ERROR, self.stderr_tail)

    def _warm_process(self, env: dict[str, str]) -> subprocess.Popen[bytes] | None:
        """A started interpreter of the pool, given this job (None: start one afresh)."""
        if self.warm is None:
            return None
        process = self.warm.take()
        if process is None:
            return None
        assert process.stdin is not None
        try:
            process.stdin.write(orjson.dumps({"cwd": str(self.job_dir), "env": env}) + b"\n")
            process.stdin.close()
        except OSError:  # it died meanwhile
            _kill_group(process)
            return None
        return process

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"job {self.key} {getattr(target, '__name__', '')}")
        thread.start()
        self._threads.append(thread)

    def _read_output(self, stream: IO[bytes], level: int, tail: deque[str] | None) -> None:
        with stream:
            for raw in stream:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not text:
                    continue
                if tail is not None:
                    tail.append(text)
                self.deliver(pipe.log_message(level, text))

    def signal(self, signum: int) -> None:
        """Send `signum` to the job's whole process group (if it still runs)."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def terminate(self, kill_timeout: float) -> None:
        """Scrapy's graceful stop (SIGTERM), then SIGKILL after `kill_timeout` seconds."""
        self.signal(signal.SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = threading.Timer(kill_timeout, self.signal, (signal.SIGKILL,))
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def poll(self) -> int | None:
        return self.process.poll() if self.process else None

    def wait(self) -> int:
        """The exit code (negative: killed by that signal) once the process ended, what is
        left of its group was killed and every message was delivered."""
        assert self.process is not None
        code = self.process.wait()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        # children the job left behind share its group: they go with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._close_keep_open()
        for thread in self._threads:
            thread.join()
        return code

    def _close_keep_open(self) -> None:
        if self._keep_open is not None:
            os.close(self._keep_open)
            self._keep_open = None

    def cleanup(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class WarmPool:
    """One interpreter started ahead of the next job, with Scrapy already imported (about
    a second of each job's start on a small machine). It waits for its job's directory and
    environment on stdin, then runs `start-crawl` as a fresh process would: nothing of the
    project or of sh_scrapy is imported before (sh_scrapy reads the job's environment when
    it is imported), and the reactor is not installed.

    Start and take from a thread that lives as long as the worker (see JobProcess)."""

    def __init__(self, python: str, project_dir: Path) -> None:
        self.python = python
        self.project_dir = project_dir
        self._spare: subprocess.Popen[bytes] | None = None

    def fill(self) -> None:
        if self._spare is not None and self._spare.poll() is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHUB_", "JOBQ_"))}
        project = str(self.project_dir.resolve())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self._spare = subprocess.Popen(
            [self.python, "-c", WARM_START], cwd=self.project_dir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent,
        )

    def spare_pid(self) -> int | None:
        return self._spare.pid if self._spare is not None else None

    def take(self) -> subprocess.Popen[bytes] | None:
        """The spare interpreter (None: there is none alive), and a new spare started."""
        spare, self._spare = self._spare, None
        with contextlib.suppress(OSError):
            self.fill()
        if spare is None or spare.poll() is not None:
            return None
        return spare

    def close(self) -> None:
        if self._spare is not None:
            _kill_group(self._spare)
            for stream in (self._spare.stdin, self._spare.stdout, self._spare.stderr):
                if stream is not None:
                    stream.close()
            self._spare = None


#: what a warm interpreter runs: import Scrapy, wait for the job, then start-crawl
WARM_START = """
import json, os, sys
try:
    import scrapy, scrapy.cmdline, scrapy.crawler, scrapy.utils.project, twisted.python.log
except Exception:
    pass  # the job imports them again and reports what fails
line = sys.stdin.readline()
if not line:
    sys.exit(0)
order = json.loads(line)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.chdir(order["cwd"])
os.environ.clear()
os.environ.update(order["env"])
from sh_scrapy.crawl import main
sys.exit(main())
"""
