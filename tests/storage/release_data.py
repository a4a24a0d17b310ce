"""The schema-1 fixtures of `data/` (made by `data/make_release_0001.py` with the
released jobq): loading their rows into a schema-1 database, and comparing answers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
#: tables the triggers of schema 1 fill from `jobs`: loaded after it, overwriting
DERIVED = ("job_tags", "state_counts")


def rows(backend: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"release-0001-{backend}.json").read_text()))


def recorded(backend: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"release-0001-{backend}-answers.json").read_text()))


def normalize(status: int, body: str) -> list[Any]:
    """An answer as its status and JSON lines, without `elapsed` (the age of a job: it
    grows); an error as its status and text."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "elapsed"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    if status != 200:
        return [status, body]
    return [status, *(strip(json.loads(line)) for line in body.splitlines() if line.strip())]


def _ordered(tables: dict[str, Any]) -> list[str]:
    names = [t for t in tables if t not in DERIVED and t != "jobq_schema_version"]
    return names + [t for t in DERIVED if t in tables]


def load_sqlite(path: Path, schema_1: str, split: Any) -> None:
    """A schema-1 SQLite database at `path` holding the released jobq's rows."""
    tables = rows("sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in split(schema_1):
            conn.execute(statement)
        for table in _ordered(tables):
            columns, values = tables[table]["columns"], tables[table]["rows"]
            marks = ", ".join("?" * len(columns))
            names = ", ".join(f'"{c}"' for c in columns)
            verb = "INSERT OR REPLACE" if table in DERIVED else "INSERT"
            conn.executemany(f'{verb} INTO "{table}" ({names}) VALUES ({marks})', values)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")  # as jobq left it
    finally:
        conn.close()


def load_postgres(url: str, schema_1: str) -> None:
    """Schema 1 (tables and version table in `public`) holding the released rows."""
    import psycopg

    tables = rows("postgres")
    with psycopg.connect(url) as conn:
        conn.execute(schema_1.encode())
        conn.execute("CREATE TABLE jobq_schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO jobq_schema_version VALUES (1)")
        conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
        for table in _ordered(tables):
            columns, values = tables[table]["columns"], tables[table]["rows"]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join(["%s"] * len(columns))
            with conn.cursor() as cursor:
                cursor.executemany(
                    f'INSERT INTO "{table}" ({names}) VALUES ({marks})'.encode(), values)
        conn.execute("SELECT setval(pg_get_serial_sequence('api_keys', 'key_id'),"
                     " (SELECT max(key_id) FROM api_keys))")


def at_schema(
    backend: str, db_url: str, version: int, then: Callable[[Any], None] | None = None
) -> None:
    """A database of `backend` at `db_url` holding the released rows, brought up to schema
    `version` as jobq's migration runner does (on PostgreSQL: schema `jobq`, its
    search_path, then each script). `then(conn)` (a sqlite3 or psycopg connection) runs in
    the same transaction, before the version is recorded."""
    import psycopg

    from jobq.storage import _pg_sql
    from jobq.storage import sqlite as sqlite_backend

    if backend == "sqlite":
        path = Path(db_url[len("sqlite:///"):])
        steps = dict(sqlite_backend.migrations())
        load_sqlite(path, steps[1], sqlite_backend.split_statements)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN")
            for number in range(2, version + 1):
                for statement in sqlite_backend.split_statements(steps[number]):
                    conn.execute(statement)
            if then is not None:
                then(conn)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    pg_steps = dict(_pg_sql.migrations())
    load_postgres(db_url, pg_steps[1])
    with psycopg.connect(db_url) as pg:
        pg.execute("CREATE SCHEMA jobq")
        pg.execute("SET LOCAL search_path = jobq")
        for number in range(2, version + 1):
            pg.execute(pg_steps[number].encode())
        if then is not None:
            then(pg)
        pg.execute("INSERT INTO jobq.jobq_schema_version (version) VALUES (%s)", (version,))
