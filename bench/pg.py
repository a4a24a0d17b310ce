"""PostgreSQL helpers: a fresh database per workload group, and its size."""

from __future__ import annotations

from typing import Any


def _connect(base: str) -> Any:
    import psycopg  # jobq's PostgreSQL driver; only needed for --backend postgres

    return psycopg.connect(base.rstrip("/") + "/postgres", autocommit=True, connect_timeout=5)


def available(base: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        with _connect(base):
            return None
    except Exception as exc:  # any failure means "skip PostgreSQL"
        return f"{type(exc).__name__}: {exc}".strip()


def recreate(base: str, name: str) -> str:
    """Drop and create database NAME; return its URL for `jobq serve --db`."""
    with _connect(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rstrip("/") + "/" + name


def drop(base: str, name: str) -> None:
    with _connect(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def size(base: str, name: str) -> int:
    with _connect(base) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        return int(row[0]) if row else 0


def vacuum_analyze(url: str) -> None:
    """Fresh statistics after bulk seeding, as autovacuum would give in time."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("VACUUM ANALYZE")
