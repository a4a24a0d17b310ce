"""Run wrk (the C load generator) with a script of bench/lua and read its report.

A single Python client tops out near 1,000 requests/s, which would hide the
server's speed; wrk does not. Every run is bounded in time (-d) and killed
if it overruns. The returned command line reproduces the run from the repo root.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = Path("bench/lua")  # relative: the printed commands run from the repo root


@dataclass
class Run:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int  # socket errors, timeouts and HTTP statuses >= 400
    cycles: int  # claim.lua: completed startjob+update pairs
    empties: int  # claim.lua: startjob answered 204
    command: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _rate(r: dict[str, float], secs: float, connections: int, stops_early: bool) -> float:
    if stops_early and r["mean_us"] > 0:
        return connections * 1e6 / r["mean_us"]
    return r["requests"] / secs if secs else 0.0


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    script: str,
    args: list[str] | None = None,
    *,
    connections: int = 1,
    threads: int | None = None,
    seconds: float = 10,
    auth: str | None = None,
    env: dict[str, str] | None = None,
    stops_early: bool = False,
) -> Run:
    """Run wrk for SECONDS. STOPS_EARLY: the script stops its threads when it
    runs out of work (bodies.lua), but wrk still reports the full -d as the
    duration; the rate then comes from Little's law (connections / mean latency)."""
    threads = threads or min(connections, 2)  # 2 cores: more wrk threads only compete
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "30s",
    ]
    if auth:
        argv += ["-H", f"Authorization: {auth}"]
    argv += ["-s", str(LUA / script), url]
    if args:
        argv += ["--", *args]
    env = env or {}
    command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)])
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    report = next((ln[6:] for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or report is None:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}): {command}\n{proc.stdout}\n{proc.stderr}"
        )
    r = json.loads(report)
    secs = r["duration_us"] / 1e6
    errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        requests=r["requests"],
        seconds=round(secs, 3),
        rps=round(_rate(r, secs, connections, stops_early), 1),
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        mean_ms=round(r["mean_us"] / 1000, 3),
        max_ms=r["max_us"] / 1000,
        errors=errors,
        cycles=r["cycles"],
        empties=r["empties"],
        command=command,
    )
