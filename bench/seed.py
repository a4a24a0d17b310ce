"""Fill servers with jobs quickly, from several client processes.

jobq gets batched pushes (1,000 jobs a request, created directly in their
final state); Scrapyd, which has no batch call, gets one schedule.json per job.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import httpx

SPIDERS = 10  # jobs are spread over spiders s0..s9 (10% each)
TAGS = 20  # and tagged t0..t19 (5% each)


def job_line(i: int, state: str) -> str:
    return json.dumps({"spider": f"s{i % SPIDERS}", "state": state, "tags": [f"t{i % TAGS}"]})


def _push_worker(url: str, auth: str, batches: list[int], batch: int, state: str) -> int:
    body = "\n".join(job_line(i, state) for i in range(batch)) + "\n"
    done = 0
    with httpx.Client(headers={"Authorization": auth}, timeout=300) as client:
        for size in batches:
            data = (
                body if size == batch else "\n".join(job_line(i, state) for i in range(size)) + "\n"
            )
            r = client.post(url, content=data)
            r.raise_for_status()
            done += size
    return done


def push_jobs(
    base: str, pid: int, auth: str, total: int, state: str, batch: int = 1000, procs: int = 2
) -> float:
    """Push TOTAL jobs in STATE to project PID; returns the seconds taken."""
    sizes = [batch] * (total // batch) + ([total % batch] if total % batch else [])
    shares = [sizes[k::procs] for k in range(procs)]
    url = f"{base}/jobq/{pid}/push"
    t0 = time.monotonic()
    with mp.get_context("spawn").Pool(procs) as pool:
        pushed = sum(
            pool.starmap(_push_worker, [(url, auth, s, batch, state) for s in shares if s])
        )
    if pushed != total:
        raise RuntimeError(f"pushed {pushed} of {total}")
    return time.monotonic() - t0


def _schedule_worker(url: str, project: str, spider: str, n: int) -> list[str]:
    ids = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            r = client.post(url, data={"project": project, "spider": spider})
            ids.append(r.json()["jobid"])
    return ids


def scrapyd_schedule(base: str, project: str, spider: str, total: int, procs: int = 4) -> list[str]:
    """Schedule TOTAL pending jobs on Scrapyd; returns their job ids."""
    counts = [total // procs + (1 if k < total % procs else 0) for k in range(procs)]
    with mp.get_context("spawn").Pool(procs) as pool:
        parts = pool.starmap(
            _schedule_worker, [(base + "/schedule.json", project, spider, n) for n in counts]
        )
    return [i for part in parts for i in part]
