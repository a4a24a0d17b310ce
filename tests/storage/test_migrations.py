"""Fresh databases are made by running the migrations in order; starting on an empty or
current database (also several nodes at once) leaves it at the latest version; a
database of the released schema 1, with data, upgrades and reads back the same through
the API; a database jobq must not use (not SQLite, another application's, a `jobq`
schema jobq did not make, a newer schema) stops `jobq serve` with one line and exit
status 2, and nothing is written to it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from jobq import errors
from jobq.storage import _pg_sql
from jobq.storage import sqlite as sqlite_backend
from jobq.storage.postgres import PostgresStorage, describe
from jobq.storage.sqlite import SqliteStorage
from tests import helpers
from tests.storage import release_data

pytestmark = pytest.mark.anyio

# -- SQLite ----------------------------------------------------------------------------


def _sqlite_apply(path: Path, scripts: list[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for script in scripts:
            for statement in sqlite_backend.split_statements(script):
                conn.execute(statement)
    finally:
        conn.close()


def _sqlite_dump(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def test_migrations_are_numbered_in_order() -> None:
    for steps in (sqlite_backend.migrations(), _pg_sql.migrations()):
        assert [n for n, _ in steps] == list(range(1, len(steps) + 1)), "numbered 1, 2, 3 ..."


async def test_sqlite_open_creates_the_latest_version(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "jobq.db")
    await store.open()
    await store.close()
    assert store.migrate() == sqlite_backend.migrations()[-1][0]
    names = {row[1] for row in _sqlite_dump(tmp_path / "jobq.db")}
    assert {"jobs", "projects", "spiders", "state_counts"} <= names


# -- PostgreSQL ------------------------------------------------------------------------

#: what makes up a schema, read from the catalogs
PG_CATALOG = {
    "tables": """
        SELECT table_name, table_type FROM information_schema.tables
        WHERE table_schema = %(schema)s ORDER BY 1""",
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
               column_default, is_identity, identity_generation
        FROM information_schema.columns WHERE table_schema = %(schema)s ORDER BY 1, 3""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = %(schema)s ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = %(schema)s ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(schema)s ORDER BY 1""",
    "sequences": """
        SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
        WHERE sequence_schema = %(schema)s ORDER BY 1""",
}


def _pg_dump(url: str, skip_tables: tuple[str, ...] = (),
             schema: str = "jobq") -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        dump = {name: conn.execute(sql, {"schema": schema}).fetchall()  # type: ignore[arg-type]
                for name, sql in PG_CATALOG.items()}
    if skip_tables:
        dump = {
            name: [row for row in rows if row[0] not in skip_tables]
            for name, rows in dump.items()
        }
    return dump


def _pg_apply(url: str, scripts: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for script in scripts:
            conn.execute(script.encode())


@pytest.fixture
def pg_url2(pg_url: str) -> Any:
    """A second fresh database (pg_url has already checked that PostgreSQL answers)."""
    url = helpers.create_pg_database()
    try:
        yield url
    finally:
        helpers.drop_pg_database(url)


async def test_postgres_nodes_starting_together_migrate_once(pg_url: str, pg_url2: str) -> None:
    stores = [PostgresStorage(pg_url, pool_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert await stores[0].migrate() == _pg_sql.migrations()[-1][0]
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT version FROM jobq.jobq_schema_version").fetchall()
    assert versions == [(_pg_sql.migrations()[-1][0],)], "the schema was made exactly once"
    assert _pg_dump(pg_url, schema="public")["tables"] == [], "nothing of jobq's in public"
    _pg_apply(pg_url2, ["CREATE SCHEMA jobq; SET search_path = jobq",
                        *(script for _, script in _pg_sql.migrations())])
    assert _pg_dump(pg_url, skip_tables=("jobq_schema_version",)) == _pg_dump(pg_url2)


def test_named_queries_parse() -> None:
    queries = _pg_sql.queries()
    assert "claim_job" in queries and "FOR UPDATE OF j SKIP LOCKED" in queries["claim_job"]
    assert all(sql and not sql.endswith(";") for sql in queries.values())
    with pytest.raises(ValueError, match="twice"):
        _pg_sql.parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")


# -- start-up refusals -------------------------------------------------------------------


def _serve(db: str) -> subprocess.CompletedProcess[str]:
    """`jobq serve` on db, expected to refuse it and exit (a server that starts is killed
    after the timeout, which fails the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["JOBQ_ADMIN_KEY"] = "test-admin-key"
    return subprocess.run(
        [*helpers.jobq_command(), "serve", "--port", "0", "--db", db, "--log-level", "warning"],
        env=env, capture_output=True, text=True, timeout=30,
    )


def _assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file of folder: (mode, sha256 of its bytes)."""
    return {path.name: (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.iterdir())}


def _make_not_sqlite(path: Path) -> None:
    path.write_text("jobs,state\n1,pending\n")


def _make_foreign(path: Path) -> None:
    conn = sqlite3.connect(path)  # user_version 0, tables of its own
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()


def _make_other_application(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1196444487")  # a GeoPackage
    conn.execute("PRAGMA user_version = 1")
    for table in sorted(sqlite_backend.UNMARKED_TABLES):
        conn.execute(f"CREATE TABLE {table} (x)")
    conn.commit()
    conn.close()


def _make_newer(path: Path) -> None:
    store = SqliteStorage(path)
    store.migrate()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # as jobq leaves its databases
    conn.execute("PRAGMA user_version = 999")
    conn.close()


@pytest.mark.parametrize(("make", "words"), [
    (_make_not_sqlite, ("not a SQLite database",)),
    (_make_foreign, ("not a jobq database", "notes")),
    (_make_other_application, ("not a jobq database", "application_id")),
    (_make_newer, ("schema version 999 is newer",)),
], ids=["not-sqlite", "foreign-tables", "other-application-id", "newer-schema"])
def test_sqlite_start_refuses_a_database_it_must_not_use(
    tmp_path: Path, make: Any, words: tuple[str, ...]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "app.db"
    make(path)
    before = _files(folder)
    _assert_refused(_serve(f"sqlite:///{path}"), str(path), *words)
    assert _files(folder) == before, "the file was changed, or -wal/-shm files were left"


async def test_sqlite_migrate_and_backup_refuse_too(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _make_foreign(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    for args in (["migrate"], ["backup", str(tmp_path / "copy.db")]):
        done = subprocess.run([*helpers.jobq_command(), *args, "--db", f"sqlite:///{path}"],
                              env=env, capture_output=True, text=True, timeout=30)
        _assert_refused(done, str(path), "not a jobq database")
    assert not (tmp_path / "copy.db").exists()
    with pytest.raises(errors.DatabaseRefused):
        await SqliteStorage(path).open()


def _pg_snapshot(url: str) -> Any:
    """Everything a start-up could have written: every schema's catalog and jobq's
    version rows."""
    with psycopg.connect(url) as conn:
        schemas = [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"
            " AND nspname <> 'information_schema' ORDER BY 1")]
        versions = conn.execute(
            "SELECT version FROM jobq.jobq_schema_version ORDER BY 1").fetchall() \
            if "jobq" in schemas and conn.execute(
                "SELECT to_regclass('jobq.jobq_schema_version')").fetchone() != (None,) \
            else None
    return schemas, versions, {schema: _pg_dump(url, schema=schema) for schema in schemas}


@pytest.mark.postgres
def test_postgres_start_refuses_a_jobq_schema_it_did_not_make(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA jobq")
        conn.execute("CREATE TABLE jobq.jobs (id bigint PRIMARY KEY, payload text)")
    before = _pg_snapshot(pg_url)
    _assert_refused(_serve(pg_url), describe(pg_url), "was not made by jobq")
    assert _pg_snapshot(pg_url) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_start_refuses_a_newer_schema_and_writes_nothing(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    latest = _pg_sql.migrations()[-1][0] if backend == "postgres" else \
        sqlite_backend.migrations()[-1][0]
    if backend == "sqlite":
        path = Path(db_url[len("sqlite:///"):])
        SqliteStorage(path).migrate()
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {latest + 1}")
        conn.close()
        before: Any = _files(tmp_path)
        where = str(path)
    else:
        asyncio.run(PostgresStorage(db_url, pool_size=1).migrate())
        with psycopg.connect(db_url, autocommit=True) as conn_pg:
            conn_pg.execute("INSERT INTO jobq.jobq_schema_version VALUES (%s)", (latest + 1,))
        before = _pg_snapshot(db_url)
        where = describe(db_url)
    _assert_refused(_serve(db_url), where, f"schema version {latest + 1} is newer")
    after = _files(tmp_path) if backend == "sqlite" else _pg_snapshot(db_url)
    assert after == before, "the refused database was written to"


@pytest.mark.postgres
def test_postgres_shares_a_database_without_mixing_tables(pg_url: str, tmp_path: Path) -> None:
    """Another application's `projects` and `jobs` in public stay as they are; jobq's
    tables are in the schema jobq."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE projects (name text PRIMARY KEY)")
        conn.execute("CREATE TABLE jobs (title text)")
        conn.execute("INSERT INTO projects VALUES ('theirs')")
    public = _pg_dump(pg_url, schema="public")
    server = helpers.Server(db=pg_url, log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            assert client.post("/jobq/5/push", content=b'{"spider":"s"}').status_code == 200
            assert client.get("/jobq/5/count", params={"state": "pending"}).json() == 1
    finally:
        server.stop()
    assert _pg_dump(pg_url, schema="public") == public
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT * FROM public.projects").fetchall() == [("theirs",)]
        assert conn.execute("SELECT count(*) FROM jobq.jobs").fetchone() == (1,)


# -- upgrade from the released schema, with data ---------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_release_0001_database_upgrades_and_reads_back_the_same(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    """Rows written by the released jobq (schema 1: jobs in every state, tags, metadata,
    settings, a botgroup, keys; see data/make_release_0001.py) are served unchanged by
    today's jobq after it upgraded the database."""
    steps = sqlite_backend.migrations() if backend == "sqlite" else _pg_sql.migrations()
    schema_1 = dict(steps)[1]
    if backend == "sqlite":
        path = Path(db_url[len("sqlite:///"):])
        release_data.load_sqlite(path, schema_1, sqlite_backend.split_statements)
    else:
        release_data.load_postgres(db_url, schema_1)
    recorded = release_data.recorded(backend)
    server = helpers.Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            for request, answer in recorded["answers"].items():
                response = client.get(request)
                assert release_data.normalize(response.status_code, response.text) == answer, \
                    request
            pushed = client.post("/jobq/7/push", content=b'{"spider":"alpha"}')
            assert pushed.json()["key"] == "7/1/5", "job numbers go on where they were"
        keys = recorded["keys"]
        assert httpx.get(f"{server.url}/jobq/7/count?state=pending",
                         auth=(keys["project"], "")).json() == 4
        assert httpx.get(f"{server.url}/jobq/8/count",
                         auth=(keys["project"], "")).status_code == 403
        assert httpx.get(f"{server.url}/jobq/7/count",
                         auth=(keys["revoked"], "")).status_code == 401
    finally:
        server.stop()
    latest = steps[-1][0]
    if backend == "sqlite":
        conn = sqlite3.connect(path)
        marks = conn.execute("PRAGMA application_id").fetchone() + \
            conn.execute("PRAGMA user_version").fetchone()
        conn.close()
        assert marks == (sqlite_backend.APPLICATION_ID, latest)
    else:
        assert _pg_dump(db_url, schema="public")["tables"] == [], "all moved out of public"
        with psycopg.connect(db_url) as conn_pg:
            assert conn_pg.execute(
                "SELECT max(version) FROM jobq.jobq_schema_version").fetchone() == (latest,)
