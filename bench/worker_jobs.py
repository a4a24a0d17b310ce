"""`jobq worker` against Scrapyd (max_proc 8): jobs/s end to end, push-to-first-log-line
latency, and the worker's overhead per job. Both run the same minimal spider (Scrapyd's
bench project, `s1`: no requests, closes at once), with Scrapyd's default poll interval.

    python -m bench.worker_jobs [--jobs 48] [--rounds 5]

Needs a server with the workers and job data routes (issues 10 and 11).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from bench import scrapyd_setup
from bench.servers import HOST, Server, free_port

ADMIN = "bench-admin-key"
SLOTS = 8
WORK = Path(__file__).parent / ".work"


def jobq_command() -> list[str]:
    return [sys.executable, "-m", "jobq"]


def write_project(where: Path) -> Path:
    for name, text in scrapyd_setup.FILES.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return where


def wait(condition: object, timeout: float = 300.0, step: float = 0.01) -> float:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise RuntimeError("timed out")
        time.sleep(step)
    return time.monotonic() - start


def bench_jobq(tmp: Path, jobs: int, rounds: int) -> dict[str, float]:
    project = write_project(tmp / "project")
    port = free_port()
    server = Server("jobq", [*jobq_command(), "serve", "--port", str(port), "--db",
                             f"sqlite:///{tmp}/jobq.sqlite3", "--log-level", "warning"],
                    port, tmp / "serve.log", env={"JOBQ_ADMIN_KEY": ADMIN})
    server.start("/system/ts")
    worker = subprocess.Popen(
        [*jobq_command(), "worker", "--url", server.url, "--apikey", ADMIN, "--project", "1",
         "--slots", str(SLOTS), "--project-dir", str(project), "--workdir", str(tmp / "w"),
         "--log-level", "warning"], stdout=open(tmp / "worker.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=server.url, auth=(ADMIN, ""), timeout=60)
    try:
        def push(n: int) -> list[str]:
            body = b"\n".join(b'{"spider": "s1"}' for _ in range(n))
            return [line.split('"')[3] for line in
                    http.post("/jobq/1/push", content=body).text.splitlines()]

        def finished(key: str) -> bool:
            return bool(http.get(f"/jobs/{key}").json().get("state") == "finished")

        def logged(key: str) -> bool:
            stats = http.get(f"/logs/{key}/stats")
            return stats.status_code == 200 and stats.json()["totals"]["input_values"] > 0

        warm = push(1)[0]
        wait(lambda: finished(warm))  # warm up: imports cached, worker idle
        latency, end_to_end = [], []
        for _ in range(rounds):
            key = push(1)[0]
            latency.append(wait(lambda key=key: logged(key)))
            end_to_end.append(latency[-1] + wait(lambda key=key: finished(key)))
        keys = push(jobs)
        started = time.monotonic()
        total = 1 + rounds + jobs
        wait(lambda: http.get("/jobq/1/count", params={"state": "finished"}).json() == total,
             step=0.05)
        elapsed = time.monotonic() - started
        assert all(finished(k) for k in keys)
        return {"jobs_per_s": jobs / elapsed, "first_log_s": statistics.median(latency),
                "push_to_finished_s": statistics.median(end_to_end)}
    finally:
        http.close()
        worker.terminate()
        worker.wait(60)
        server.stop()


def bare_start_crawl(tmp: Path, rounds: int) -> float:
    """Seconds of one `start-crawl` of s1 alone (no worker, no server), median."""
    from jobq.worker.process import JobProcess, Launch

    project = write_project(tmp / "bare-project")
    times = []
    for i in range(rounds):
        launch = Launch(job={"key": f"1/1/{i + 1}", "auth": "x", "spider": "s1"},
                        project_dir=project, python=sys.executable, workdir=tmp / "bare",
                        memory_limit_mb=950)
        process = JobProcess(launch, lambda m: None)
        started = time.monotonic()
        process.start()
        process.wait()
        times.append(time.monotonic() - started)
        process.cleanup()
    return statistics.median(times)


def bench_scrapyd(tmp: Path, jobs: int, rounds: int) -> dict[str, float]:
    python = scrapyd_setup.ensure_venv(WORK)
    run_dir = tmp / "scrapyd"
    run_dir.mkdir(parents=True)
    port = free_port()
    (run_dir / "scrapyd.conf").write_text(textwrap.dedent(f"""\
        [scrapyd]
        bind_address = {HOST}
        http_port = {port}
        max_proc = {SLOTS}
        eggs_dir = {run_dir / "eggs"}
        logs_dir = {run_dir / "logs"}
        dbs_dir = {run_dir / "dbs"}
        items_dir =
        """))
    server = Server("scrapyd", [str(python.parent / "scrapyd"), "--pidfile=", "--logfile",
                                str(run_dir / "twistd.log")], port, run_dir / "scrapyd.out",
                    cwd=run_dir)
    server.start("/daemonstatus.json")
    try:
        egg = scrapyd_setup.build_egg(python, run_dir / "project")
        with open(egg, "rb") as f:
            httpx.post(server.url + "/addversion.json", timeout=120,
                       data={"project": scrapyd_setup.PROJECT, "version": "1"},
                       files={"egg": (egg.name, f, "application/octet-stream")})
        data = {"project": scrapyd_setup.PROJECT, "spider": scrapyd_setup.SPIDER}

        def schedule() -> str:
            return str(httpx.post(server.url + "/schedule.json", data=data,
                                  timeout=120).json()["jobid"])

        def finished_ids() -> set[str]:
            answer = httpx.get(server.url + "/listjobs.json",
                               params={"project": scrapyd_setup.PROJECT}, timeout=60).json()
            return {j["id"] for j in answer["finished"]}

        def logged(job: str) -> bool:
            log = run_dir / "logs" / scrapyd_setup.PROJECT / scrapyd_setup.SPIDER / f"{job}.log"
            return log.exists() and log.stat().st_size > 0

        first = schedule()
        wait(lambda: first in finished_ids(), step=0.05)  # warm up
        latency, end_to_end = [], []
        for _ in range(rounds):
            job = schedule()
            latency.append(wait(lambda job=job: logged(job)))
            end_to_end.append(latency[-1] + wait(lambda job=job: job in finished_ids(),
                                                 step=0.02))
        started = time.monotonic()
        ids = {schedule() for _ in range(jobs)}
        wait(lambda: ids <= finished_ids(), step=0.05, timeout=900)
        elapsed = time.monotonic() - started
        return {"jobs_per_s": jobs / elapsed, "first_log_s": statistics.median(latency),
                "push_to_finished_s": statistics.median(end_to_end)}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_start_crawl(Path(tmp), args.rounds)
        jobq = bench_jobq(Path(tmp), args.jobs, args.rounds)
        scrapyd = bench_scrapyd(Path(tmp), args.jobs, args.rounds)
    print(f"{'':24}{'jobq worker':>14}{'Scrapyd':>14}")
    for name in ("jobs_per_s", "first_log_s", "push_to_finished_s"):
        print(f"{name:24}{jobq[name]:14.3f}{scrapyd[name]:14.3f}")
    print(f"bare start-crawl (s): {bare:.3f}; worker overhead per job (s):"
          f" {jobq['push_to_finished_s'] - bare:.3f}")


if __name__ == "__main__":
    main()
