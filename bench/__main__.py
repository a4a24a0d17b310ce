"""python -m bench: jobq against Scrapyd 1.6 and against a bare Starlette app.

Run from the repo root, with the Python of the venv where jobq is installed
(the bare app runs on that Python, so it uses the same Starlette and server software).
`--quick` is a short run with tiny sizes: it checks that the harness works,
its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import pg, report, servers, wrk
from bench.workloads import Bench, Sizes

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("baseline", "scrapyd", "push", "claim", "pending", "queries")
PG_DEFAULT = os.environ.get("JOBQ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, 1 s runs: does the harness work? (CI)"
    )
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="run only these workload groups (repeatable)",
    )
    p.add_argument(
        "--jobs", type=int, help="finished jobs for the query workloads (default 1,000,000)"
    )
    p.add_argument(
        "--stop-sizes",
        help="list?stop sizes, comma separated (default 10000,JOBS; or 10000,1000000,10000000)",
    )
    p.add_argument(
        "--pending", type=int, help="pending jobs for list-all and cancel (default 10,000)"
    )
    p.add_argument(
        "--claim-pending", type=int, help="pending jobs for the claim cycle (default 100,000)"
    )
    p.add_argument(
        "--cancels", type=int, help="cancels per run, each a different job (default 1,000)"
    )
    p.add_argument("--seconds", type=float, help="length of each timed run (default 10)")
    p.add_argument("--json", type=Path, help="write all results to this file")
    p.add_argument(
        "--jobq", help="command that runs jobq (default: `jobq` beside this Python, or on PATH)"
    )
    p.add_argument(
        "--peer-jobq",
        help="a second jobq command (e.g. an earlier commit's) measured in the same run, on"
        " the same groups; its rows are the backend's name with @peer",
    )
    p.add_argument(
        "--pg",
        default=PG_DEFAULT,
        help="PostgreSQL server URL without database (env JOBQ_BENCH_PG)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "bench" / ".work",
        help="scratch dir (Scrapyd venv, databases, logs)",
    )
    return p.parse_args(argv)


def sizes_from(a: argparse.Namespace) -> Sizes:
    q = a.quick
    jobs = a.jobs or (2_000 if q else 1_000_000)
    stop = (
        [int(x) for x in a.stop_sizes.split(",")]
        if a.stop_sizes
        else ([500, jobs] if q else [10_000, jobs])
    )
    return Sizes(
        jobs=jobs,
        stop_sizes=stop,
        pending=a.pending or (500 if q else 10_000),
        claim_pending=a.claim_pending or (3_000 if q else 100_000),
        cancels=a.cancels or (50 if q else 1_000),
        seconds=a.seconds or (1 if q else 10),
    )


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    mem = Path("/proc/meminfo").read_text().split()[1]
    pkgs: dict[str, str | None] = {}
    for name in ("jobq", "starlette", "granian", "uvicorn", "uvloop", "httptools", "psycopg"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _version(["wrk", "--version"]),
        "load_start": os.getloadavg(),
        "packages": pkgs,
    }


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop servers


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    os.chdir(ROOT)
    if not wrk.available():
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)  # also when started in the background
    sizes = sizes_from(a)
    groups = a.only or list(GROUPS)
    backends = ["sqlite", "postgres"] if a.backend == "both" else [a.backend]
    a.work.mkdir(parents=True, exist_ok=True)
    meta = machine()
    jobq = servers.find_jobq(a.jobq) if set(groups) - {"baseline", "scrapyd"} else []
    bench = Bench(work=a.work.resolve(), sizes=sizes, jobq=jobq, pg_base=a.pg)
    if "postgres" in backends:
        why = pg.available(a.pg)
        if why:
            bench.note(f"PostgreSQL skipped: {why}")
            backends.remove("postgres")
        else:
            meta["postgres"] = _pg_version(a.pg)
    print(
        f"# {meta['date']}  {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB; "
        f"Python {meta['python']}, SQLite {meta['sqlite']}, {meta['wrk']}",
        flush=True,
    )
    print(f"# sizes: {sizes}", flush=True)
    t0 = time.monotonic()
    try:
        if "baseline" in groups:
            bench.baseline()
        if "scrapyd" in groups:
            bench.scrapyd()
        peers = [("", jobq)] + ([("@peer", servers.find_jobq(a.peer_jobq))]
                                if a.peer_jobq and jobq else [])
        for backend in backends:
            for suffix, command in peers:
                bench.jobq, bench.suffix = command, suffix
                for group in ("push", "claim", "pending", "queries"):
                    if group in groups:
                        getattr(bench, group)(backend)
    except KeyboardInterrupt:
        print("\n# interrupted: stopping servers", file=sys.stderr)
        return 130
    finally:
        servers.stop_all()
    ratio_rows = report.ratios(bench.results)
    report.print_ratios(ratio_rows)
    target_rows = report.targets(bench.results, ratio_rows)
    report.print_targets(
        target_rows, "quick mode: figures mean nothing" if a.quick else f"{sizes.jobs:,} jobs"
    )
    meta["load_end"] = os.getloadavg()
    print(f"\n# done in {time.monotonic() - t0:.0f}s; load average {meta['load_end']}", flush=True)
    if a.json:
        out = {
            "meta": meta,
            "argv": sys.argv[1:],
            "sizes": sizes.__dict__,
            "results": bench.results,
            "ratios": ratio_rows,
            "targets": target_rows,
            "notes": bench.notes,
        }
        a.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"# results written to {a.json}")
    return 0


def _pg_version(base: str) -> str:
    import psycopg

    with psycopg.connect(base.rstrip("/") + "/postgres", connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"


if __name__ == "__main__":
    sys.exit(main())
