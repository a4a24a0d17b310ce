"""A job's process with the real `start-crawl` on the test project: what arrives on the
pipe and the outcome (RUNNER.md). No server: messages are collected in memory."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobq.worker import outcome, pipe
from jobq.worker.pipe import Message
from jobq.worker.process import JobProcess, Launch, WarmPool
from tests.worker import site

pytestmark = pytest.mark.timeout(120)


@dataclass
class Run:
    process: JobProcess
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    code: int | None = None

    def deliver(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def values(self, cmd: str) -> list[Any]:
        with self.lock:
            return [m.value() for m in self.messages if m.cmd == cmd]

    def fin(self) -> str | None:
        fins = self.values(pipe.FIN)
        return fins[-1]["outcome"] if fins else None

    def log_text(self) -> str:
        return "\n".join(str(v["message"]) for v in self.values(pipe.LOG))

    def wait(self, stop: str | None = None) -> str:
        self.code = self.process.wait()
        return outcome.close_reason(self.fin(), self.code, stop)


def start(project_dir: Path, tmp_path: Path, job: dict[str, Any],
          job_settings: dict[str, Any] | None = None, memory_mb: int = 950,
          code: str | None = None, warm: WarmPool | None = None) -> Run:
    launch = Launch(
        job={"key": "1/2/3", "auth": "token", **job}, project_dir=project_dir,
        python=sys.executable, workdir=tmp_path / "jobs", memory_limit_mb=memory_mb,
        settings={"job_settings": job_settings or {}}, storage_url="http://127.0.0.1:9/",
    )
    process_class = JobProcess if code is None else stubborn(code)
    run = Run(process_class(launch, lambda m: run.deliver(m), warm))
    spare = warm.spare_pid() if warm else None
    run.process.start()
    if warm:  # the job runs in the interpreter started ahead, not in a new one
        assert spare is not None and run.process.pid == spare
    return run


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(params=["cold", "warm"])
def warm(request: pytest.FixtureRequest, project_dir: Path) -> Iterator[WarmPool | None]:
    """A job's process started afresh, or taken from a pool of started interpreters."""
    if request.param == "cold":
        yield None
        return
    pool = WarmPool(sys.executable, project_dir)
    pool.fill()
    yield pool
    pool.close()


def test_books_items_requests_logs_stats(project_dir: Path, tmp_path: Path, site_url: str,
                                         warm: WarmPool | None) -> None:
    run = start(project_dir, tmp_path,
                {"spider": "books", "spider_args": {"base": site_url, "category": "fiction"}},
                {"BOOKS_TAG": "from-job-settings"}, memory_mb=1234, warm=warm)
    assert run.wait() == "finished"
    assert run.code == 0
    items = run.values(pipe.ITM)
    assert len(items) == site.BOOKS
    assert {i["category"] for i in items} == {"fiction"}
    assert {i["tag"] for i in items} == {"from-job-settings"}
    assert {i["memory_limit_mb"] for i in items} == {1234}
    assert all(i["_type"] == "dict" for i in items)
    requests = run.values(pipe.REQ)
    assert len(requests) == site.PAGES + site.BOOKS
    assert {r["status"] for r in requests} == {200}
    assert {"url", "method", "rs", "duration", "fp", "time"} <= set(requests[0])
    stats = run.values(pipe.STA)[-1]["stats"]
    assert stats["item_scraped_count"] == site.BOOKS
    assert stats["finish_reason"] == "finished"
    assert "Spider closed (finished)" in run.log_text()
    # FIN comes after the items: only the order on the pipe is guaranteed
    cmds = [m.cmd for m in run.messages if m.cmd in (pipe.ITM, pipe.FIN)]
    assert cmds[-1] == pipe.FIN
    assert not group_alive(run.process.pid or 0)


def test_spider_raising_at_start_fails_with_its_error_logged(
        project_dir: Path, tmp_path: Path, warm: WarmPool | None) -> None:
    run = start(project_dir, tmp_path, {"spider": "boom"}, warm=warm)
    assert run.wait() == "failed"
    assert run.code != 0
    assert run.fin() is None
    assert "boom: this spider cannot start" in run.log_text()


def test_script_job_exits_0_without_fin(project_dir: Path, tmp_path: Path,
                                        warm: WarmPool | None) -> None:
    # as on Scrapy Cloud, a script job's spider is the script's name
    run = start(project_dir, tmp_path, {"spider": "py:hello.py",
                                        "job_cmd": ["py:hello.py", "one", "two"],
                                        "job_env": {"HELLO": "world"}}, warm=warm)
    assert run.wait() == "no_reason"
    assert run.code == 0
    assert "hello from a script job ['one', 'two'] world" in run.log_text()


def test_closespider_itemcount(project_dir: Path, tmp_path: Path, site_url: str) -> None:
    run = start(project_dir, tmp_path, {"spider": "endless", "spider_args": {"base": site_url}},
                {"CLOSESPIDER_ITEMCOUNT": 5})
    assert run.wait() == "closespider_itemcount"
    assert len(run.values(pipe.ITM)) >= 5


def test_memory_limit(project_dir: Path, tmp_path: Path, site_url: str,
                      warm: WarmPool | None) -> None:
    run = start(project_dir, tmp_path, {"spider": "hog", "spider_args": {"base": site_url}},
                {"MEMUSAGE_CHECK_INTERVAL_SECONDS": 0.2}, memory_mb=250, warm=warm)
    assert run.wait() == "memusage_exceeded"
    assert run.values(pipe.STA)[-1]["stats"]["memusage/limit_reached"] == 1


def test_cancel_stops_the_crawl_and_its_group(project_dir: Path, tmp_path: Path,
                                              site_url: str, warm: WarmPool | None) -> None:
    run = start(project_dir, tmp_path, {"spider": "endless", "spider_args": {"base": site_url}},
                warm=warm)
    wait_for(lambda: len(run.values(pipe.ITM)) >= 3)
    run.process.terminate(kill_timeout=30)
    assert run.wait(stop=outcome.CANCELLED) == "cancelled"
    assert run.fin() == "shutdown"  # what Scrapy says of a SIGTERM
    assert not group_alive(run.process.pid or 0)


def test_sigkill_after_the_kill_timeout(project_dir: Path, tmp_path: Path) -> None:
    """A job that ignores SIGTERM is killed when the kill timeout is over."""
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " print('ready', flush=True); time.sleep(60)")
    run = start(project_dir, tmp_path, {"spider": "none"}, code=stubborn)
    wait_for(lambda: "ready" in run.log_text())
    started = time.monotonic()
    run.process.terminate(kill_timeout=1)
    code = run.process.wait()
    assert code == -signal.SIGKILL
    assert 0.9 < time.monotonic() - started < 10


def stubborn(code: str) -> type[JobProcess]:
    """A job process that runs `code` instead of start-crawl."""
    class Stubborn(JobProcess):
        def command(self) -> list[str]:
            return [self.launch.python, "-c", code]
    return Stubborn
