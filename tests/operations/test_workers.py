"""`jobq serve --workers N`: N server processes on one port. On PostgreSQL two processes
serve a workload of producers, workers and consumers (claims exactly once, as several
nodes do), SIGTERM stops them and the parent exits 0 with no child left, and a `kill -9`
of the parent leaves no child serving. On SQLite it is refused with one line, exit 2."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests import helpers
from tests.multinode.test_multinode import Cluster, run_workload


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as file:
        return [int(p) for p in file.read().split()]


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_sqlite_refuses_workers_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*helpers.jobq_command(), "serve", "--workers", "2", "--port", str(helpers.free_port()),
         "--db", f"sqlite:///{tmp_path / 'jobq.sqlite3'}"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "--workers needs PostgreSQL" in done.stderr
    assert not (tmp_path / "jobq.sqlite3").exists(), "refused before opening the database"


@pytest.mark.postgres
def test_two_processes_serve_claim_once_and_stop_on_sigterm(pg_url: str, tmp_path: Path) -> None:
    server = helpers.Server(db=pg_url, log=tmp_path / "server.log",
                            extra_args=["--workers", "2"]).start()
    assert server.process is not None
    try:
        children = _children(server.process.pid)
        assert len(children) == 2, children
        before = {p: _cpu_ticks(p) for p in children}
        seen = run_workload(Cluster([server]), 600)
        pushed, claimed = seen["pushed"], seen["claimed"]
        assert len(pushed) == len(set(pushed)) == 600
        twice = [k for k, n in Counter(claimed).items() if n > 1]
        assert not twice, f"{len(twice)} jobs claimed twice, e.g. {twice[:5]}"
        assert set(claimed) == set(pushed)
        for index, consumer_seen in enumerate(seen["seen"]):
            assert sorted(consumer_seen) == sorted(pushed), f"consumer {index}"
        # the kernel spread the connections: both processes worked
        assert all(_cpu_ticks(p) - before[p] > 10 for p in children), \
            {p: _cpu_ticks(p) - before[p] for p in children}
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)
    assert code == 0, (tmp_path / "server.log").read_text(errors="replace")[-3000:]
    assert _gone(children, 1), "children left after the parent exited"
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.postgres
def test_kill_9_of_the_parent_leaves_no_child_serving(pg_url: str, tmp_path: Path) -> None:
    server = helpers.Server(db=pg_url, log=tmp_path / "server.log",
                            extra_args=["--workers", "2"]).start()
    assert server.process is not None
    children = _children(server.process.pid)
    assert len(children) == 2, children
    server.kill()
    try:
        assert _gone(children, 15), "a child still runs after its parent was killed"
        with pytest.raises(httpx.ConnectError):  # nothing answers on the port any more
            httpx.get(server.url + "/system/ts", timeout=2)
    finally:
        for pid in children:  # when the test fails: leave no server behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
