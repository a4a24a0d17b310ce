"""Fresh databases are made by running the migrations in order; starting on an empty or
current database (also several nodes at once) leaves it at the latest version."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobq.storage import _pg_sql
from jobq.storage import sqlite as sqlite_backend
from jobq.storage.postgres import PostgresStorage
from jobq.storage.sqlite import SqliteStorage
from tests import helpers

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
        WHERE table_schema = 'public' ORDER BY 1""",
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
               column_default, is_identity, identity_generation
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 3""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' ORDER BY 1""",
    "sequences": """
        SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
        WHERE sequence_schema = 'public' ORDER BY 1""",
}


def _pg_dump(url: str, skip_tables: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        dump = {name: conn.execute(sql).fetchall() for name, sql in PG_CATALOG.items()}
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
        versions = conn.execute("SELECT version FROM jobq_schema_version").fetchall()
    assert versions == [(_pg_sql.migrations()[-1][0],)], "the schema was made exactly once"
    _pg_apply(pg_url2, [script for _, script in _pg_sql.migrations()])
    assert _pg_dump(pg_url, skip_tables=("jobq_schema_version",)) == _pg_dump(pg_url2)


async def test_postgres_refuses_a_newer_schema(pg_url: str) -> None:
    from jobq import errors

    store = PostgresStorage(pg_url, pool_size=1)
    await store.migrate()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobq_schema_version VALUES (999)")
    with pytest.raises(errors.JobqError, match="newer than this jobq"):
        await store.migrate()


def test_named_queries_parse() -> None:
    queries = _pg_sql.queries()
    assert "claim_job" in queries and "FOR UPDATE OF j SKIP LOCKED" in queries["claim_job"]
    assert all(sql and not sql.endswith(";") for sql in queries.values())
    with pytest.raises(ValueError, match="twice"):
        _pg_sql.parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
