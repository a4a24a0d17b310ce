"""python -m bench.workers: what workers cost the server (issue 10).

- push-to-claim latency (p50, p99): idle claimers long-polling `startjob?wait=30`, against
  claimers that poll `startjob` every second; one push every PUSH_GAP s, latency = the
  claim's answer minus the push's request, matched by key;
- heartbeats of 100 workers x 4 jobs: requests a second, and server CPU per heartbeat;
- 50 idle long-polling workers: server CPU % while nothing is pushed.

One `jobq serve` on SQLite (the default) or, with `--pg URL`, on PostgreSQL; with
`--nodes 2` on PostgreSQL the claimers wait on one node and the pushes go to another, so
the wake-up crosses nodes (LISTEN/NOTIFY). Linux only (server CPU from /proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.servers import free_port

KEY = "bench-admin-key"
P = 1
PUSH_GAP = 0.05


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(db: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["JOBQ_ADMIN_KEY"] = KEY
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobq", "serve", "--port", str(port), "--db", db,
             "--log-level", "warning", "--worker-timeout", "60"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/system/ts", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("jobq serve did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def push_to_claim(claim_url: str, push_url: str, claimers: int, pushes: int,
                  long_poll: bool, project: int) -> list[float]:
    claimed: dict[str, float] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def claimer() -> None:
        with httpx.Client(base_url=claim_url, auth=(KEY, ""), timeout=60) as client:
            while not stop.is_set():
                params = {"wait": 30} if long_poll else {}
                answer = client.post(f"/jobq/{project}/startjob", params=params)
                if answer.status_code == 200:
                    with lock:
                        claimed[answer.json()["key"]] = time.monotonic()
                elif not long_poll:
                    time.sleep(1.0)

    threads = [threading.Thread(target=claimer, daemon=True) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # everyone is waiting (or in its poll cycle)
    pushed: dict[str, float] = {}
    with httpx.Client(base_url=push_url, auth=(KEY, ""), timeout=30) as client:
        for _ in range(pushes):
            sent = time.monotonic()
            key = client.post(f"/jobq/{project}/push", json={"spider": "s"}).json()["key"]
            pushed[key] = sent
            time.sleep(PUSH_GAP)
    deadline = time.monotonic() + 10
    while len(claimed) < pushes and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    return [(claimed[k] - pushed[k]) * 1000 for k in pushed if k in claimed]


def heartbeats(url: str, pid: int, workers: int, jobs_each: int, seconds: float) -> None:
    project = P + 2
    with httpx.Client(base_url=url, auth=(KEY, ""), timeout=30) as client:
        client.post(f"/jobq/{project}/push", content=b'{"spider": "hb"}\n' * (workers * jobs_each))
        fleet = []
        for i in range(workers):
            worker_id = client.post("/workers", json={"name": f"w{i}", "slots": jobs_each}).json()[
                "id"]
            keys = [client.post(f"/jobq/{project}/startjob", json={"worker_id": worker_id})
                    .json()["key"] for _ in range(jobs_each)]
            fleet.append((worker_id, keys))
    count = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def beat(share: list[tuple[str, list[str]]]) -> None:
        with httpx.Client(base_url=url, auth=(KEY, ""), timeout=30) as client:
            while not stop.is_set():
                for worker_id, keys in share:
                    answer = client.post(f"/workers/{worker_id}/heartbeat", json={"jobs": keys})
                    assert answer.status_code == 200, answer.text
                    with lock:
                        count[0] += 1

    threads = [threading.Thread(target=beat, args=(fleet[i::8],)) for i in range(8)]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    print(f"heartbeats ({workers} workers x {jobs_each} jobs, 8 client threads):"
          f" {count[0] / wall:.0f} requests/s, {cpu / count[0] * 1000:.2f} ms server CPU each")


def idle(url: str, pid: int, workers: int, seconds: float) -> None:
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, auth=(KEY, ""), timeout=90) as client:
            while not stop.is_set():
                client.post(f"/jobq/{P + 3}/startjob", params={"wait": 60})

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    stop.set()
    print(f"idle: {workers} long-polling workers for {wall:.0f} s:"
          f" {cpu / wall * 100:.2f} % of one core")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", help="a PostgreSQL database URL (default: SQLite)")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 2))
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = args.pg or f"sqlite:///{folder}/bench.sqlite3"
        procs = [start_server(db, Path(folder) / f"node{i}.log") for i in range(args.nodes)]
        try:
            claim_url, push_url = procs[0][1], procs[-1][1]
            for long_poll in (True, False):
                # each run its own project: the other run's claimers may still be waiting
                ms = push_to_claim(claim_url, push_url, 10, args.pushes, long_poll,
                                   P if long_poll else P + 1)
                how = "long-poll wait=30" if long_poll else "polling every 1 s"
                print(f"push-to-claim, 10 idle claimers, {how}: p50 {statistics.median(ms):.1f}"
                      f" ms, p99 {percentile(ms, 0.99):.1f} ms ({len(ms)} jobs)")
            heartbeats(procs[0][1], procs[0][0].pid, 100, 4, args.seconds)
            idle(procs[0][1], procs[0][0].pid, 50, args.seconds * 2)
        finally:
            for proc, _ in procs:
                proc.kill()  # a graceful stop would wait for the long polls still open
                proc.wait(30)


if __name__ == "__main__":
    main()
