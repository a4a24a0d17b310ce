"""Ratios (jobq against Scrapyd and against the bare stack, same run) and the
issue's targets. Targets are reported, never enforced: a speed check has no
place in CI on a shared machine.
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]

# jobq workload -> the Scrapyd workload doing the same thing
SCRAPYD_OF = {
    "push_single": "push_single",
    "push_batch": "push_single",
    "list_pending": "list_pending",
    "cancel": "cancel",
}


def find(results: list[Row], system: str, workload: str) -> Row | None:
    return next((r for r in results if r["system"] == system and r["workload"] == workload), None)


def ratios(results: list[Row]) -> list[Row]:
    """For each jobq figure: throughput / Scrapyd's, and request rate / the bare
    Starlette app's for the same method and connection count."""
    out = []
    for r in results:
        if r["system"].split("@")[0] not in ("sqlite", "postgres") or "throughput" not in r:
            continue
        row: Row = {"system": r["system"], "workload": r["workload"], "label": r["label"]}
        ref = find(results, "scrapyd", SCRAPYD_OF.get(r["workload"], ""))
        if ref and ref["throughput"]:
            row["vs_scrapyd"] = round(r["throughput"] / ref["throughput"], 2)
            row["vs_scrapyd_p50"] = round(ref["p50_ms"] / r["p50_ms"], 2) if r["p50_ms"] else None
        base = find(results, "baseline", f"{r['method'].lower()}_c{r['connections']}")
        if base and base["rps"]:
            row["vs_baseline"] = round(r["rps"] / base["rps"], 3)
        out.append(row)
    return out


def print_ratios(rows: list[Row]) -> None:
    print("\n== jobq as a ratio (throughput; same run) ==")
    print(f"{'backend':9} {'workload':48} {'x Scrapyd':>10} {'x bare Starlette':>17}")
    for r in rows:
        sd = f"{r['vs_scrapyd']:.1f}x" if "vs_scrapyd" in r else "-"
        bl = f"{r['vs_baseline']:.2f}x" if "vs_baseline" in r else "-"
        print(f"{r['system']:9} {r['label']:48} {sd:>10} {bl:>17}")


def _get(results: list[Row], system: str, workload: str, key: str) -> float | None:
    r = find(results, system, workload)
    return None if r is None or r.get(key) is None else float(r[key])


def _ratio(rows: list[Row], system: str, workload: str, key: str) -> float | None:
    r = next((x for x in rows if x["system"] == system and x["workload"] == workload), None)
    return None if r is None or key not in r else float(r[key])


BACKENDS = ("sqlite", "postgres")

#: The targets of the issues, as (backends, label, workload, field, at least?, figure, shown).
#: Ratios come from the rows (same run); the rest from the results. Issue 9 raised the
#: push, list, batch and claim targets of the first round and added count has_tag.
TARGETS: list[tuple[tuple[str, ...], str, str, str, bool, float, str]] = [
    (("sqlite",), "push 64 conns vs Scrapyd schedule.json", "push_single", "vs_scrapyd",
     True, 15, ">= 15x"),
    (("sqlite",), "push 64 conns vs bare Starlette POST", "push_single", "vs_baseline",
     True, 0.6, ">= 0.6x"),
    (("postgres",), "push 64 conns vs Scrapyd schedule.json", "push_single", "vs_scrapyd",
     True, 13, ">= 13x"),
    (("postgres",), "push 64 conns vs bare Starlette POST", "push_single", "vs_baseline",
     True, 0.5, ">= 0.5x"),
    (BACKENDS, "list all pending vs listjobs.json", "list_pending", "vs_scrapyd", True, 8, ">= 8x"),
    (BACKENDS, "cancel 1 of pending vs cancel.json", "cancel", "vs_scrapyd", True, 15, ">= 15x"),
    (BACKENDS, "newest 100, p50 ms", "newest100", "p50_ms", False, 3, "<= 3 ms"),
    (BACKENDS, "count by state, p50 ms", "count_state", "p50_ms", False, 1, "<= 1 ms"),
    (BACKENDS, "count has_tag at max jobs, p50 ms", "count_tag", "p50_ms", False, 5, "<= 5 ms"),
    (BACKENDS, "server RSS at max jobs, MiB", "storage", "rss_mib", False, 100, "<= 100 MiB"),
    (("sqlite",), "batched push, jobs/s", "push_batch", "throughput", True, 60000, ">= 60,000"),
    (("sqlite",), "claim cycle 8 workers, 1 node, cycles/s", "claim", "throughput",
     True, 2500, ">= 2,500"),
    (("postgres",), "claim cycle 8 workers, 3 nodes, cycles/s", "claim", "throughput",
     True, 1200, ">= 1,200"),
]
_RATIOS = ("vs_scrapyd", "vs_baseline")


def targets(results: list[Row], rows: list[Row]) -> list[Row]:
    """The issues' targets, each with the measured value (not measured: left out)."""
    out = []

    def check(name: str, value: float | None, at_least: bool, figure: float, want: str) -> None:
        if value is not None:
            met = value >= figure if at_least else value <= figure
            out.append({"target": name, "want": want, "value": value, "met": met})

    for b in BACKENDS:
        for backends, label, workload, field, at_least, figure, want in TARGETS:
            if b in backends:
                value = (_ratio(rows, b, workload, field) if field in _RATIOS
                         else _get(results, b, workload, field))
                check(f"{b}: {label}", value, at_least, figure, want)
        for r in results:
            if r["system"] == b and r["workload"].startswith("stop10@"):
                check(f"{b}: list?stop -> 10 of {r['jobs']:,}, p50 ms", r["p50_ms"], False, 2,
                      "<= 2 ms")
    return out


def print_targets(rows: list[Row], sizes_note: str) -> None:
    print(f"\n== targets of the issue (informative; {sizes_note}) ==")
    for t in rows:
        mark = "ok  " if t["met"] else "MISS"
        print(f"{mark} {t['target']:52} {t['value']:>12,.3f}  (want {t['want']})")


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def markdown(data: dict[str, Any]) -> str:
    """A results file (--json) as the Markdown tables of bench/README.md."""
    meta, results = data["meta"], data["results"]
    ratio = {(r["system"], r["workload"]): r for r in data["ratios"]}
    out = [
        f"Run {meta['date']}: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB, "
        f"Linux {meta['kernel']}; Python {meta['python']}, SQLite {meta['sqlite']}, "
        f"{meta.get('postgres', 'PostgreSQL not used')}, {meta['wrk'].split(' Copyright')[0]}; "
        + ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if v)
        + f". Load average at start {meta['load_start'][0]:.1f}, at end {meta['load_end'][0]:.1f}.",
        "",
        "| system | workload | throughput | p50 ms | p99 ms | RSS MiB | x Scrapyd | x bare app |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "throughput" not in r:
            continue
        x = ratio.get((r["system"], r["workload"]), {})
        sd = f"{x['vs_scrapyd']:.1f}x" if "vs_scrapyd" in x else ""
        bl = f"{x['vs_baseline']:.2f}x" if "vs_baseline" in x else ""
        out.append(
            f"| {r['system']} | {r['label']} | {_num(r['throughput'])} {r['unit']} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.1f} | {r['rss_mib']} | {sd} | {bl} |"
        )
    for r in results:
        if r["workload"] == "storage":
            out.append(
                f"| {r['system']} | {r['label']} | | | | {r['rss_mib']} | "
                f"{r['db_bytes_per_job']:,.0f} bytes/job | |"
            )
    out += ["", "| target | wanted | measured | met |", "|---|---|---:|---|"]
    for t in data["targets"]:
        out.append(
            f"| {t['target']} | {t['want']} | {t['value']:,.2f} | {'yes' if t['met'] else 'no'} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    print(markdown(json.loads(Path(sys.argv[1]).read_text())), end="")
