"""Job data benchmarks: item ingest through the official client's batch writer, reading a
million items back (JSON lines and msgpack), and bytes stored per 1 KiB item, on SQLite
and PostgreSQL.

    python -m bench.jobdata [--backend sqlite|postgres|both] [--items N] [--writers W]
                            [--stored N] [--json FILE]

Each backend gets a fresh database and a fresh `jobq serve` (defaults: SQLite
synchronous=FULL), stopped at the end. Items are made before the clock starts; the
client's own work (JSON encoding, gzip) is part of the ingest figure, as in a crawl.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack
import psycopg

from bench.servers import Server, free_port, stop_all

WORK = Path(__file__).parent / ".work" / "jobdata"
ADMIN = "bench-admin-key"
_WORD_TEXT = ("price stock shipping delivery color size model brand review rating cotton steel "
         "wireless battery screen camera kitchen garden outdoor travel leather classic premium "
         "compact portable digital organic natural vintage modern durable lightweight")
WORDS = _WORD_TEXT.split()


def small_item(rng: random.Random, i: int) -> dict[str, Any]:
    """About 200 bytes of JSON, as a product listing row."""
    return {"url": f"https://shop.example.com/product/{i}",
            "title": " ".join(rng.choices(WORDS, k=6)), "price": round(rng.uniform(1, 500), 2),
            "sku": f"{rng.getrandbits(48):012x}", "in_stock": rng.random() < 0.8,
            "category": rng.choice(WORDS)}


def kib_item(rng: random.Random, i: int) -> dict[str, Any]:
    """About 1 KiB of JSON: a product page with a description."""
    item = small_item(rng, i)
    item["description"] = " ".join(rng.choices(WORDS, k=95))
    item["images"] = [f"https://img.example.com/{rng.getrandbits(40):010x}.jpg"
                      for _ in range(3)]
    return item


def _push_running(url: str, project: int) -> tuple[str, str]:
    row = httpx.post(f"{url}/jobq/{project}/push", json={"spider": "bench", "state": "running"},
                     auth=(ADMIN, "")).json()
    return row["key"], row["auth"]


def _write(url: str, key: str, token: str, n: int, size: str, seed: int) -> float:
    """One crawl process: n items through the batch writer; returns seconds taken."""
    from scrapinghub import HubstorageClient

    rng = random.Random(seed)
    make = small_item if size == "small" else kib_item
    items = [make(rng, i) for i in range(n)]
    client = HubstorageClient(auth=(key, token), endpoint=url)
    started = time.perf_counter()
    writer = client.get_job(key).items
    for item in items:
        writer.write(item)
    writer.close()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def ingest(url: str, project: int, n: int, writers: int, size: str) -> dict[str, Any]:
    jobs = [_push_running(url, project) for _ in range(writers)]
    rng = random.Random(1)
    make = small_item if size == "small" else kib_item
    raw = sum(len(json.dumps(make(rng, i))) + 1 for i in range(2000)) / 2000 * n
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        # each writer makes its items first; the clock runs from its first write to its
        # close (all writers start together: they are made alike)
        elapsed = max(pool.starmap(_write, [(url, key, token, n // writers, size, w)
                                            for w, (key, token) in enumerate(jobs)]))
    return {"jobs": [k for k, _ in jobs], "items": n, "writers": writers,
            "seconds": round(elapsed, 2), "items_per_s": round(n / elapsed),
            "mib_per_s": round(raw / elapsed / 2**20, 1), "avg_item_bytes": round(raw / n)}


def _post_batches(url: str, key: str, token: str, batches: list[bytes], size: int) -> None:
    with httpx.Client(base_url=url, auth=(key, token), timeout=120) as http:
        for n, body in enumerate(batches):
            answer = http.post(f"/items/{key}", content=body, params={"start": n * size},
                               headers={"content-encoding": "gzip"})
            answer.raise_for_status()


def client_ceiling(n: int = 20_000) -> dict[str, Any]:
    """What the official client's batch writer spends of its own on each batch (JSON
    encoding of each item, gzip at level 9), with no server: the most items a second one
    writer process can send, however fast the server."""
    from scrapinghub.hubstorage.batchuploader import _encode_gzip
    from scrapinghub.hubstorage.serialization import jsonencode

    rng = random.Random(3)
    items = [small_item(rng, i) for i in range(n)]
    started = time.perf_counter()
    for b in range(0, n, 1000):
        _encode_gzip(jsonencode(item) for item in items[b:b + 1000])
    elapsed = time.perf_counter() - started
    return {"items": n, "seconds": round(elapsed, 2), "items_per_s": round(n / elapsed)}


def ingest_raw(url: str, project: int, n: int, connections: int) -> dict[str, Any]:
    """The server alone: gzip batches of 1,000 items made beforehand, posted by
    `connections` clients at once (each its own job), as many crawls would."""
    import gzip
    import threading

    rng = random.Random(2)
    size = 1000
    per = n // connections
    bodies = [b"".join(json.dumps(small_item(rng, i)).encode() + b"\n"
                       for i in range(b * size, (b + 1) * size)) for b in range(per // size)]
    raw = sum(map(len, bodies)) * connections
    batches = [gzip.compress(b, 6) for b in bodies]
    jobs = [_push_running(url, project) for _ in range(connections)]
    threads = [threading.Thread(target=_post_batches, args=(url, key, token, batches, size))
               for key, token in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = per // size * size * connections
    return {"items": total, "connections": connections, "seconds": round(elapsed, 2),
            "items_per_s": round(total / elapsed), "mib_per_s": round(raw / elapsed / 2**20, 1)}


def read_back(url: str, key: str, fmt: str) -> dict[str, Any]:
    """Reads the whole job with meta=_key (as the client asks); the clock stops when the
    last byte is in, the records are counted after (their decoding is the client's work)."""
    headers = {"accept": "application/x-msgpack"} if fmt == "msgpack" else {}
    parts = []
    started = time.perf_counter()
    with httpx.stream("GET", f"{url}/items/{key}", params={"meta": "_key"}, headers=headers,
                      auth=(ADMIN, ""), timeout=600) as answer:
        answer.raise_for_status()
        parts = list(answer.iter_raw(1 << 20))
    elapsed = time.perf_counter() - started
    size = sum(map(len, parts))
    if fmt == "msgpack":
        unpacker = msgpack.Unpacker()
        count = 0
        for part in parts:
            unpacker.feed(part)
            count += sum(1 for _ in unpacker)
    else:
        count = sum(part.count(b"\n") for part in parts)
    return {"format": fmt, "items": count, "seconds": round(elapsed, 2),
            "items_per_s": round(count / elapsed), "mib_per_s": round(size / elapsed / 2**20, 1)}


def stored_bytes(db: str) -> int:
    if db.startswith("sqlite"):
        path = db[len("sqlite:///"):]
        import sqlite3

        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN"
                                " ('job_data_chunks', 'job_data_chunks_key', 'job_data_heads')")
            return int(rows.fetchone()[0] or 0)
        finally:
            conn.close()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE job_data_chunks")
        row = conn.execute("SELECT pg_total_relation_size('job_data_chunks')"
                           " + pg_total_relation_size('job_data_heads')").fetchone()
        return int(row[0]) if row else 0


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    pg_base = os.environ.get("JOBQ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    if backend == "sqlite":
        folder = WORK / "db"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        db = f"sqlite:///{folder / 'jobq.sqlite3'}"
    else:
        with psycopg.connect(f"{pg_base}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS jobq_bench_jobdata WITH (FORCE)")
            conn.execute("CREATE DATABASE jobq_bench_jobdata")
        db = f"{pg_base}/jobq_bench_jobdata"
    port = free_port()
    jobq = [sys.executable, "-m", "jobq"]
    server = Server(f"jobq-{backend}", [*jobq, "serve", "--port", str(port), "--db", db,
                                        "--log-level", "warning"],
                    port, WORK / f"{backend}.log", env={"JOBQ_ADMIN_KEY": ADMIN})
    server.start("/system/ts")
    result: dict[str, Any] = {"backend": backend}
    result["client_alone"] = client_ceiling()
    print(backend, "the client's own encoding, 1 process:", result["client_alone"], flush=True)
    try:
        one = ingest(server.url, 1, args.items, 1, "small")
        result["ingest_1_writer"] = one
        print(backend, "ingest, 1 writer:", one, flush=True)
        if args.writers > 1:
            many = ingest(server.url, 2, args.items, args.writers, "small")
            result[f"ingest_{args.writers}_writers"] = many
            print(backend, f"ingest, {args.writers} writers:", many, flush=True)
        raw = ingest_raw(server.url, 4, args.items, 2)
        result["ingest_raw_http"] = raw
        print(backend, "ingest, raw HTTP batches:", raw, flush=True)
        for fmt in ("jl", "msgpack"):
            read = read_back(server.url, one["jobs"][0], fmt)
            result[f"read_{fmt}"] = read
            print(backend, "read:", read, flush=True)
        before = stored_bytes(db)
        kib = ingest(server.url, 3, args.stored, 1, "kib")
        after = stored_bytes(db)
        per_item = (after - before) / args.stored
        result["stored_per_kib_item"] = {
            "items": args.stored, "avg_item_bytes": kib["avg_item_bytes"],
            "bytes_per_item": round(per_item),
            "ratio": round(per_item / kib["avg_item_bytes"], 3)}
        print(backend, "stored:", result["stored_per_kib_item"], flush=True)
    finally:
        server.stop()
        if backend == "postgres":
            with psycopg.connect(f"{pg_base}/postgres", autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS jobq_bench_jobdata WITH (FORCE)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jobdata")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    try:
        for backend in backends:
            results.append(run_backend(backend, args))
    finally:
        stop_all()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
