"""Two jobq builds against each other in one run: single-job push, 64 connections, SQLite.

A before/after comparison on a shared machine only means something when both run under
the same load, so the runs interleave: per round the bare app's POST, then A, then B (each
its own server and fresh SQLite file, started once). Each round's figures are divided by
that round's bare POST; the medians over the rounds are printed.

Run from the repo root with the venv's Python; `--a`/`--b` are commands that run jobq
(default: the `jobq` beside this Python for both). To compare with an earlier commit,
extract its `jobq` package into a directory and pass, e.g.
`--a "env PYTHONPATH=DIR .venv/bin/python -P -m jobq"` (`-P`: the repo root, the current
directory, must not come first on the path).
Run: python -m bench.ab [--a CMD] [--b CMD] [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from bench import servers, wrk

JL = "application/x-jsonlines"
LINE = '{"spider":"s1"}'
KEY = "benchkey"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", help="command that runs jobq A (default: jobq beside Python)")
    parser.add_argument("--b", help="command that runs jobq B (default: jobq beside Python)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobq-ab-"))
    auth = wrk.basic_auth(KEY)
    rates: dict[str, list[float]] = {"bare": [], "A": [], "B": []}
    try:
        bare = servers.start_baseline(work / "bare.log")
        jobqs = {
            name: servers.start_jobq(servers.find_jobq(cmd), f"sqlite:///{work / name}.sqlite3",
                                     KEY, work / f"{name}.log")
            for name, cmd in (("A", args.a), ("B", args.b))
        }
        for n in range(1, args.rounds + 1):
            row = []
            for name in rates:
                url = (bare.url + "/push" if name == "bare"
                       else f"{jobqs[name].url}/jobq/1/push")
                run = wrk.run(url, "post.lua", [JL, LINE], connections=args.connections,
                              seconds=args.seconds, auth=None if name == "bare" else auth)
                if run.errors:
                    raise SystemExit(f"{name}: {run.errors} errors ({run.command})")
                rates[name].append(run.rps)
                row.append(f"{name} {run.rps:8,.0f} req/s")
            print(f"round {n}: " + "   ".join(row), flush=True)
    finally:
        servers.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians over {args.rounds} rounds of {args.seconds:g} s, "
          f"{args.connections} connections:")
    for name in ("A", "B"):
        ratios = [r / b for r, b in zip(rates[name], rates["bare"], strict=True)]
        print(f"  {name}: {statistics.median(rates[name]):8,.0f} req/s"
              f"   x bare POST {statistics.median(ratios):.2f}")
    ab = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    print(f"  bare: {statistics.median(rates['bare']):8,.0f} req/s"
          f"   B / A {statistics.median(ab):.2f} (median of the rounds' ratios)")


if __name__ == "__main__":
    main()
