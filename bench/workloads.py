"""The workloads. Each group gets fresh servers and a fresh database, so one
group's jobs never weigh on another's figures; groups run one at a time on a
2-core machine, so nothing else competes for the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import pg, scrapyd_setup, seed, servers, wrk
from bench.servers import Server

JL = "application/x-jsonlines"
FORM = "application/x-www-form-urlencoded"
PID = 1  # every group uses project 1 of its own database
MIB = 1024 * 1024


@dataclass
class Sizes:
    jobs: int  # finished jobs for the query workloads
    stop_sizes: list[int]  # sizes at which list?stop is measured
    pending: int  # pending jobs for list-all and cancel
    claim_pending: int  # pending jobs the claim cycle works through
    cancels: int  # cancels per run (each a different pending job)
    seconds: float  # length of each timed run
    seed_procs: int = 2


@dataclass
class Bench:
    work: Path
    sizes: Sizes
    jobq: list[str]
    pg_base: str
    admin_key: str = "benchkey"
    #: added to the backend's name in the rows recorded (`--peer-jobq`: "@peer")
    suffix: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def auth(self) -> str:
        return wrk.basic_auth(self.admin_key)

    # ---- recording -------------------------------------------------------

    def record(
        self,
        system: str,
        name: str,
        label: str,
        run: wrk.Run,
        server: Server | list[Server] | None,
        *,
        method: str,
        connections: int,
        per_request: int = 1,
        unit: str = "req/s",
        throughput: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Print one workload's figures and the command that reproduces it."""
        rate = throughput if throughput is not None else run.rps * per_request
        group = server if isinstance(server, list) else [server] if server else []
        rss = sum(s.rss_bytes() for s in group) / MIB if group else None  # summed over nodes
        if system in ("sqlite", "postgres"):
            system += self.suffix
        row: dict[str, Any] = {
            "system": system,
            "workload": name,
            "label": label,
            "method": method,
            "connections": connections,
            "throughput": round(rate, 1),
            "unit": unit,
            "rps": run.rps,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "rss_mib": round(rss, 1) if rss is not None else None,
            "requests": run.requests,
            "errors": run.errors,
            "command": run.command,
            "load1": load1(),  # other work on the machine skews every figure
            **extra,
        }
        self.results.append(row)
        rss_s = f"RSS {rss:6.1f} MiB" if rss is not None else ""
        print(
            f"[{system:8}] {label:44} {rate:>11,.{0 if rate >= 100 else 1}f} {unit:9}"
            f" p50 {run.p50_ms:8.3f} ms"
            f"  p99 {run.p99_ms:8.3f} ms  {rss_s}",
            flush=True,
        )
        if run.errors:
            print(f"           !! {run.errors} errors (HTTP >= 400 or socket)", flush=True)
        print(f"           $ {run.command}", flush=True)
        return row

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)
        self.notes.append(text)

    # ---- jobq servers and databases ---------------------------------------

    @contextmanager
    def jobq_servers(
        self, backend: str, group: str, nodes: int = 1
    ) -> Iterator[tuple[list[Server], str]]:
        """NODES jobq servers sharing one fresh database; removed afterwards."""
        if backend == "sqlite":
            path = self.work / "db" / f"{group}.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            for old in path.parent.glob(path.name + "*"):
                old.unlink()
            db, where = f"sqlite:///{path}", str(path)
        else:
            # one name per run: several people may bench on one PostgreSQL server at once
            name = f"jobq_bench_{group}_{os.getpid()}"
            db, where = pg.recreate(self.pg_base, name), name
        started: list[Server] = []
        try:
            for n in range(nodes):
                log = self.work / "logs" / f"jobq-{backend}-{group}-{n}.log"
                started.append(servers.start_jobq(self.jobq, db, self.admin_key, log))
            yield started, where
        finally:
            for s in started:
                s.stop()
            if backend == "sqlite":
                for old in Path(where).parent.glob(Path(where).name + "*"):
                    old.unlink()
            else:
                pg.drop(self.pg_base, where)

    def db_bytes(self, backend: str, where: str) -> int:
        return (
            servers.sqlite_bytes(Path(where))
            if backend == "sqlite"
            else pg.size(self.pg_base, where)
        )

    def seed(self, server: Server, backend: str, n: int, state: str) -> None:
        if n <= 0:
            return
        secs = seed.push_jobs(server.url, PID, self.auth, n, state, procs=self.sizes.seed_procs)
        print(f"#   seeded {n:,} {state} jobs in {secs:.1f}s ({n / secs:,.0f} jobs/s)", flush=True)
        if backend == "postgres":
            pg.vacuum_analyze(server.argv[server.argv.index("--db") + 1])

    def get(self, server: Server, path: str) -> httpx.Response:
        r = httpx.get(server.url + path, headers={"Authorization": self.auth}, timeout=120)
        r.raise_for_status()
        return r

    # ---- baseline and Scrapyd ------------------------------------------------

    def baseline(self) -> None:
        """A bare Starlette app: the most this server software gives."""
        s = servers.start_baseline(self.work / "logs" / "baseline.log")
        try:
            for c in (1, 8, 64):
                run = wrk.run(
                    s.url + "/lines", "get.lua", connections=c, seconds=self.sizes.seconds
                )
                self.record(
                    "baseline",
                    f"get_c{c}",
                    f"GET tiny JSON lines, {c} conns",
                    run,
                    s,
                    method="GET",
                    connections=c,
                )
                run = wrk.run(
                    s.url + "/push",
                    "post.lua",
                    [JL, '{"spider":"s1"}'],
                    connections=c,
                    seconds=self.sizes.seconds,
                )
                self.record(
                    "baseline",
                    f"post_c{c}",
                    f"POST small body, {c} conns",
                    run,
                    s,
                    method="POST",
                    connections=c,
                )
        finally:
            s.stop()

    def scrapyd(self) -> None:
        python = scrapyd_setup.ensure_venv(self.work)
        self.note(f"reference: {scrapyd_setup.version(python)}")
        run_dir = self.work / "scrapyd-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        s = scrapyd_setup.start(python, run_dir)
        secs = self.sizes.seconds
        try:
            n = self.sizes.pending
            ids = scrapyd_setup.seed_pending(python, run_dir, n)
            status = httpx.get(s.url + "/daemonstatus.json").json()
            print(f"#   Scrapyd: {status['pending']:,} pending jobs", flush=True)
            url = f"{s.url}/listjobs.json?project={scrapyd_setup.PROJECT}"
            run = wrk.run(url, "get.lua", connections=1, seconds=secs)
            self.record(
                "scrapyd",
                "list_pending",
                f"listjobs.json, {n:,} pending, 1 conn",
                run,
                s,
                method="GET",
                connections=1,
            )

            bodies = self.work / "scrapyd-cancel.txt"
            picks = spread(ids, self.sizes.cancels)
            bodies.write_text("".join(f"project={scrapyd_setup.PROJECT}&job={i}\n" for i in picks))
            args = [FORM, rel(bodies), "1", '"prevstate": "pending"']
            run = wrk.run(
                s.url + "/cancel.json", "bodies.lua", args, seconds=secs, stops_early=True
            )
            self.record(
                "scrapyd",
                "cancel",
                f"cancel.json, 1 of {n:,} pending, 1 conn",
                run,
                s,
                method="POST",
                connections=1,
                cancelled=run.cycles,
            )
            self.check_cancelled(run, "scrapyd")

            form = f"project={scrapyd_setup.PROJECT}&spider={scrapyd_setup.SPIDER}"
            run = wrk.run(
                s.url + "/schedule.json", "post.lua", [FORM, form], connections=64, seconds=secs
            )
            self.record(
                "scrapyd",
                "push_single",
                "schedule.json, 64 conns",
                run,
                s,
                method="POST",
                connections=64,
            )
        finally:
            s.stop()

    # ---- jobq groups -----------------------------------------------------------

    def push(self, backend: str) -> None:
        """1. push: single-job requests from 64 connections; batched push."""
        secs = self.sizes.seconds
        with self.jobq_servers(backend, "push") as (nodes, _where):
            s = nodes[0]
            url = f"{s.url}/jobq/{PID}/push"
            run = wrk.run(
                url,
                "post.lua",
                [JL, '{"spider":"s1"}'],
                connections=64,
                seconds=secs,
                auth=self.auth,
            )
            self.record(
                backend,
                "push_single",
                "push 1 job/request, 64 conns",
                run,
                s,
                method="POST",
                connections=64,
            )
            run = wrk.run(
                url,
                "post.lua",
                [JL, '{"spider":"s1"}', "1000"],
                connections=4,
                seconds=secs,
                auth=self.auth,
            )
            self.record(
                backend,
                "push_batch",
                "push 1,000 jobs/request, 4 conns",
                run,
                s,
                method="POST",
                connections=4,
                per_request=1000,
                unit="jobs/s",
            )

    def claim(self, backend: str) -> None:
        """2. claim cycle: 8 workers doing startjob + update(finished)."""
        nodes_n = 3 if backend == "postgres" else 1
        n = self.sizes.claim_pending
        with self.jobq_servers(backend, "claim", nodes=nodes_n) as (nodes, _where):
            self.seed(nodes[0], backend, n, "pending")
            ports = ",".join(str(s.port) for s in nodes)
            run = wrk.run(
                nodes[0].url + "/",
                "claim.lua",
                [str(PID)],
                connections=8,
                threads=8,
                seconds=self.sizes.seconds,
                auth=self.auth,
                env={"BENCH_PORTS": ports},
            )
            cps = run.cycles / run.seconds if run.seconds else 0.0
            if run.empties:
                self.note(
                    f"claim ({backend}): the queue ran dry ({run.empties} empty startjob answers)"
                )
            self.record(
                backend,
                "claim",
                f"startjob+finish, 8 workers, {nodes_n} node(s)",
                run,
                nodes,
                method="POST",
                connections=8,
                unit="cycles/s",
                throughput=cps,
                nodes=nodes_n,
                empties=run.empties,
            )

    def pending(self, backend: str) -> None:
        """4. list all N pending jobs; cancel one of N pending."""
        n, secs = self.sizes.pending, self.sizes.seconds
        with self.jobq_servers(backend, "pending") as (nodes, _where):
            s = nodes[0]
            self.seed(s, backend, n, "pending")
            path = f"/jobq/{PID}/list?state=pending&count={n}"
            keys = [
                json.loads(line)["key"]
                for line in self.get(s, path).text.splitlines()
                if line.strip()
            ]
            if len(keys) != n:
                self.note(f"list ({backend}): {path} gave {len(keys)} jobs, expected {n}")
            run = wrk.run(s.url + path, "get.lua", seconds=secs, auth=self.auth)
            self.record(
                backend,
                "list_pending",
                f"list all {n:,} pending, 1 conn",
                run,
                s,
                method="GET",
                connections=1,
            )

            bodies = self.work / f"jobq-{backend}-cancel.txt"
            bodies.write_text(
                "".join(json.dumps([{"key": k}]) + "\n" for k in spread(keys, self.sizes.cancels))
            )
            run = wrk.run(
                f"{s.url}/jobq/{PID}/cancel",
                "bodies.lua",
                [JL, rel(bodies), "1", '"count":%s*1'],
                seconds=secs,
                auth=self.auth,
                stops_early=True,
            )
            self.record(
                backend,
                "cancel",
                f"cancel 1 of {n:,} pending, 1 conn",
                run,
                s,
                method="POST",
                connections=1,
                cancelled=run.cycles,
            )
            self.check_cancelled(run, backend)

    def check_cancelled(self, run: wrk.Run, system: str) -> None:
        # every cancel in the timed run must have hit a pending job
        if run.cycles < min(run.requests, self.sizes.cancels):
            self.note(
                f"cancel ({system}): only {run.cycles} of {run.requests} answers cancelled a job"
            )

    def queries(self, backend: str) -> None:
        """3 and 5: reads of many finished jobs; list?stop at several sizes; RSS, bytes/job."""
        sizes = sorted({*self.sizes.stop_sizes, self.sizes.jobs})
        secs = self.sizes.seconds
        with self.jobq_servers(backend, "queries") as (nodes, where):
            s = nodes[0]
            empty = self.db_bytes(backend, where)  # schema only: fixed cost, not per job
            have = 0
            for size in sizes:
                self.seed(s, backend, size - have, "finished")
                have = size
                self.stop_query(backend, s, size)
                if size != self.sizes.jobs:
                    continue
                q = f"/jobq/{PID}"
                reads = [
                    ("newest100", f"{q}/list?count=100", "list newest 100"),
                    ("count_state", f"{q}/count?state=finished", "count state=finished"),
                    ("count_spider", f"{q}/count?spider=s3", "count spider=s3 (10%)"),
                    ("count_tag", f"{q}/count?has_tag=t7", "count has_tag=t7 (5%)"),
                    ("count_lacks_tag", f"{q}/count?lacks_tag=t7", "count lacks_tag=t7 (95%)"),
                    # seeding puts t7 on spider s7 only (i % 20 == 7 gives i % 10 == 7)
                    ("count_tag_spider", f"{q}/count?has_tag=t7&spider=s7",
                     "count has_tag=t7 spider=s7"),
                    ("list_spider", f"{q}/list?spider=s3&count=100", "list spider=s3, newest 100"),
                    ("list_tag", f"{q}/list?has_tag=t7&count=100", "list has_tag=t7, newest 100"),
                    ("summary", f"{q}/summary", "summary"),
                ]
                for name, path, label in reads:
                    self.get(s, path)  # answers 2xx (raises otherwise)
                    run = wrk.run(s.url + path, "get.lua", seconds=secs, auth=self.auth)
                    self.record(
                        backend,
                        name,
                        f"{label}, {size:,} jobs",
                        run,
                        s,
                        method="GET",
                        connections=1,
                        jobs=size,
                    )
                rss = s.rss_bytes()
                db = self.db_bytes(backend, where)
                per_job = (db - empty) / size
                row = {
                    "system": backend,
                    "workload": "storage",
                    "label": f"storage at {size:,} jobs",
                    "jobs": size,
                    "rss_mib": round(rss / MIB, 1),
                    "db_bytes": db,
                    "db_empty_bytes": empty,
                    "db_bytes_per_job": round(per_job, 1),
                }
                self.results.append(row)
                print(
                    f"[{backend:8}] storage at {size:,} jobs: server RSS {rss / MIB:.1f} MiB, "
                    f"database {db / MIB:,.1f} MiB ({empty / MIB:,.1f} MiB empty) "
                    f"= {per_job:,.0f} bytes/job",
                    flush=True,
                )

    def stop_query(self, backend: str, s: Server, size: int) -> None:
        """list?stop=KEY returning the 10 newest: the incremental-sync call."""
        newest = [
            json.loads(x)["key"]
            for x in self.get(s, f"/jobq/{PID}/list?count=11").text.splitlines()
            if x
        ]
        path = f"/jobq/{PID}/list?stop={newest[-1]}"
        got = [x for x in self.get(s, path).text.splitlines() if x.strip()]
        if len(got) != 10:
            self.note(f"list?stop ({backend}, {size:,} jobs) returned {len(got)} jobs, expected 10")
        run = wrk.run(s.url + path, "get.lua", seconds=self.sizes.seconds, auth=self.auth)
        self.record(
            backend,
            f"stop10@{size}",
            f"list?stop=KEY -> 10 newest, {size:,} jobs",
            run,
            s,
            method="GET",
            connections=1,
            jobs=size,
        )


def spread(items: list[str], n: int) -> list[str]:
    """N items taken evenly across the list (cancel jobs from all over the queue)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(k * step)] for k in range(n)]


def rel(path: Path) -> str:
    """PATH as the printed wrk commands use it: relative to the repo root."""
    return os.path.relpath(path, wrk.ROOT)


def load1() -> float:
    """The 1-minute load average now."""
    return float(Path("/proc/loadavg").read_text().split()[0])
