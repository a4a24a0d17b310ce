"""What a job token's writes cost: small writes made with a job token against the same
writes made with the admin key, in one run, on one fresh server per backend.

    python -m bench.tokens [--backend sqlite|postgres|both] [--seconds S] [--connections C]
                           [--json FILE]

The token of a worker's leased claim re-reads its job on each write (one primary-key
read) to check that the token's run is still the job's (a lost worker's token must not
change a job claimed again): the ratio leased/key of the same workload is that check's
price. The token of a job claimed without a lease (here: pushed as running) skips it.

Workloads (wrk, `bench/lua/post.lua` and `get.lua`): `POST jobs/K/progress` (one metadata
field, a durable commit each), `GET jobs/K` (a read, not re-checked) and `POST items/K`
(batches of 1,000 small items, as a crawl writes), each with the leased token, the plain
token and the admin key.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import wrk
from bench.servers import find_jobq, start_jobq, stop_all

WORK = Path(__file__).parent / ".work" / "tokens"
ADMIN = "bench-admin-key"
PID = 1
#: an item batch as a crawl's batch writer sends it (1,000 small items, uncompressed here)
BATCH = 1000
ITEM = json.dumps({"url": "https://shop.example.com/product/1", "title": "compact steel kettle",
                   "price": 24.5, "sku": "a1b2c3d4e5f6", "in_stock": True})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _database(backend: str, pg: str) -> str:
    if backend == "sqlite":
        shutil.rmtree(WORK / "db", ignore_errors=True)
        (WORK / "db").mkdir(parents=True)
        return f"sqlite:///{WORK / 'db' / 'jobq.sqlite3'}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS jobq_bench_tokens")
        conn.execute("CREATE DATABASE jobq_bench_tokens")
    return f"{pg}/jobq_bench_tokens"


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    db = _database(backend, args.pg)
    server = start_jobq(find_jobq(args.jobq), db, ADMIN, WORK / f"{backend}.log")
    try:
        admin = httpx.Client(base_url=server.url, auth=(ADMIN, ""), timeout=30)
        plain = admin.post(f"/jobq/{PID}/push", json={"spider": "bench", "state": "running"})
        key, token = plain.json()["key"], plain.json()["auth"]
        worker = admin.post("/workers", json={"name": "bench"}).json()["id"]
        admin.post(f"/jobq/{PID}/push", json={"spider": "bench"}).raise_for_status()
        leased = admin.post(f"/jobq/{PID}/startjob", json={"worker_id": worker}).json()
        beating = threading.Event()

        def heartbeat() -> None:  # the worker stays alive: its lease holds
            with httpx.Client(base_url=server.url, auth=(ADMIN, ""), timeout=30) as own:
                while not beating.wait(5):
                    own.post(f"/workers/{worker}/heartbeat", json={"jobs": [leased["key"]]})

        threading.Thread(target=heartbeat, daemon=True).start()
        # each caller writes to its own job: the same work for each
        callers = {"leased": (leased["key"], _basic(leased["key"], leased["auth"])),
                   "plain": (key, _basic(key, token)), "key": (key, _basic(ADMIN, ""))}
        out: dict[str, Any] = {}
        for name, path, script, extra, conns in (
            ("metadata POST", "/jobs/{key}/progress", "post.lua", ["application/json", "1"],
             args.connections),
            ("metadata GET", "/jobs/{key}", "get.lua", None, 1),
            ("items POST", "/items/{key}", "post.lua",
             ["application/x-jsonlines", ITEM, str(BATCH)], args.connections),
        ):
            runs = {who: wrk.run(server.url + path.format(key=job), script, extra,
                                 connections=conns, seconds=args.seconds, auth=auth)
                    for who, (job, auth) in callers.items()}
            out[name] = {
                **{who: {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                         "errors": r.errors, "command": r.command}
                   for who, r in runs.items()},
                **{f"{who}/key": round(runs[who].rps / runs["key"].rps, 3)
                   if runs["key"].rps else None for who in ("leased", "plain")},
            }
        beating.set()
        admin.close()
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--jobq", default=None)
    parser.add_argument("--pg", default=os.environ.get("JOBQ_BENCH_PG",
                                                       "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not wrk.available():
        raise SystemExit("wrk is needed (apt-get install -y wrk)")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = run_backend(backend, args)
            for name, row in results[backend].items():
                print(f"{backend:8} {name:13}" + "".join(
                    f"  {who} {row[who]['rps']:7.1f}/s p50 {row[who]['p50_ms']:5.2f} ms"
                    for who in ("leased", "plain", "key"))
                    + f"  leased/key {row['leased/key']}  plain/key {row['plain/key']}"
                    + ("  ERRORS" if any(row[w]["errors"] for w in ("leased", "plain", "key"))
                       else ""))
    finally:
        stop_all()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
