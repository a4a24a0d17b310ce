"""Make the schema-1 fixtures of `test_migrations.py` with the *released* jobq.

    git archive <commit with schema 1> | tar -x -C OLD
    PYTHONPATH=OLD python tests/storage/data/make_release_0001.py

runs that jobq's `serve` on a fresh SQLite file and a fresh PostgreSQL database, writes
jobs in every state, tags, metadata, settings, a botgroup and keys through its API and
CLI, records the answers of a set of GET requests, and stores for each backend the rows
of every table (`release-0001-<backend>.json`) and the answers (`...-answers.json`). The
tests load the rows into a schema-1 database, upgrade it with today's jobq and ask the
same requests. Made once, from commit 88e0cdd (the last with only migration 0001);
the job-token signing key in `secrets` was then replaced by a placeholder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests import helpers
from tests.storage.release_data import normalize

HERE = Path(__file__).parent
P, OTHER = 7, 8
#: GET requests whose answers must read back the same after the upgrade
REQUESTS = [
    *(f"/jobq/{P}/list?state={s}" for s in ("pending", "running", "finished", "deleted")),
    f"/jobq/{P}/list?state=pending&jobmeta=note&jobmeta=nested&jobmeta=unicode",
    f"/jobq/{P}/list?state=finished&has_tag=t1",
    *(f"/jobq/{P}/count?state={s}" for s in ("pending", "running", "finished", "deleted")),
    f"/jobq/{P}/summary",
    f"/jobq/{P}/jobsummary",
    "/projects/jobsummaries",
    f"/projects/{P}/settings",
    f"/spiders/{P}/lastjobsummary",
    f"/ids/{P}/spider/alpha",
    f"/ids/{P}/spider/beta",
    *(f"/jobs/{P}/1/{n}" for n in (1, 2, 3, 4)),
    *(f"/jobs/{P}/2/{n}" for n in (1, 2)),
    f"/jobq/{OTHER}/list?state=pending",
]


def ask(client: httpx.Client, path: str) -> list[Any]:
    response = client.get(path)
    return normalize(response.status_code, response.text)


def write(client: httpx.Client) -> None:
    def ok(response: httpx.Response) -> httpx.Response:
        assert response.status_code == 200, (response.request.url, response.text)
        return response

    lines = [
        {"spider": "alpha", "priority": 3, "tags": ["t1", "t2"], "note": "first"},
        {"spider": "alpha", "tags": ["t1"], "nested": {"a": [1, 2, {"b": None}]}},
        {"spider": "alpha", "priority": 0, "unique": "u-1"},
        {"spider": "alpha", "tags": ["t3"], "unicode": "\u00e9\u4e2d\U0001f600"},
        {"spider": "beta", "priority": 4},
        {"spider": "beta", "tags": ["t2"]},
    ]
    ok(client.post(f"/jobq/{P}/push", content="\n".join(map(json.dumps, lines))))
    ok(client.post(f"/jobq/{OTHER}/push", content=json.dumps({"spider": "gamma"})))
    ok(client.post(f"/jobq/{P}/startjob"))  # beta 2/1 (priority 4)
    ok(client.post(f"/jobq/{P}/startjob"))  # alpha 1/1 (priority 3)
    ok(client.post(f"/jobq/{P}/update", content="\n".join(map(json.dumps, [
        {"key": f"{P}/1/1", "state": "finished", "close_reason": "finished",
         "tags": ["t1", "done"]},
        {"key": f"{P}/1/2", "state": "deleted"},
    ]))))
    ok(client.post(f"/jobs/{P}/2/1", content=json.dumps({"items": 12, "pages": [1, 2]})))
    ok(client.post(f"/jobs/{P}/1/3/extra", content=json.dumps("field value")))
    ok(client.post(f"/projects/{P}/settings", content=json.dumps(
        {"botgroups": ["g1"], "limits": {"x": 1.5}})))
    ok(client.post("/botgroups/g1/max_running", content="5"))


def keys(db: str, env: dict[str, str]) -> dict[str, str]:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "jobq", "keys", *args, "--db", db],
                              env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    project_key = cli("create", "--project", str(P), "--name", "robot")
    revoked = cli("create", "--project", str(P), "--name", "old-robot")
    listed = [json.loads(line) for line in cli("list", "--json").splitlines()]
    cli("revoke", str(next(k["id"] for k in listed if k["name"] == "old-robot")))
    return {"project": project_key, "revoked": revoked}


def dump_sqlite(path: Path) -> dict[str, Any]:
    import sqlite3

    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {}
    for table in tables:
        cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')
        out[table] = {"columns": [d[0] for d in cursor.description],
                      "rows": [list(r) for r in cursor]}
    conn.close()
    return out


def dump_postgres(url: str) -> dict[str, Any]:
    out = {}
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')  # type: ignore[arg-type]
            out[table] = {"columns": [d.name for d in cursor.description or ()],
                          "rows": [list(r) for r in cursor]}
    return out


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    for backend in ("sqlite", "postgres"):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                db = f"sqlite:///{tmp}/jobq.sqlite3"
            else:
                db = helpers.create_pg_database()
            server = helpers.Server(db=db, log=Path(tmp) / "server.log")
            server.start()
            try:
                with server.client() as client:
                    write(client)
                    secrets = keys(db, env)
                    answers = {path: ask(client, path) for path in REQUESTS}
                    again = {path: ask(client, path) for path in REQUESTS}
                    assert answers == again, "an answer depends on the time of asking"
            finally:
                server.stop()
            rows = dump_sqlite(Path(tmp) / "jobq.sqlite3") if backend == "sqlite" \
                else dump_postgres(db)
            if backend == "postgres":
                helpers.drop_pg_database(db)
        (HERE / f"release-0001-{backend}.json").write_text(
            json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        (HERE / f"release-0001-{backend}-answers.json").write_text(
            json.dumps({"keys": secrets, "answers": answers}, indent=1, ensure_ascii=False)
            + "\n")


if __name__ == "__main__":
    main()
