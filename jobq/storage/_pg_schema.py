"""Start-up of a PostgreSQL database: is it jobq's, and is its schema current?

jobq's tables live in the schema `SCHEMA` (not `public`), with the version table
`jobq_schema_version` in it; sessions set `search_path` to it, so queries stay
unqualified. A database is used when

* it has no `jobq` schema: a new database (whatever else it holds), or one made by
  schema 1, which kept everything in `public` (migration 0002 moves it);
* its `jobq` schema holds jobq's version table, at a version this code knows.

Anything else (a `jobq` schema that jobq did not make, a newer schema) is refused with
`DatabaseRefused`, inside a transaction that is rolled back: nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from jobq import errors
from jobq.storage import _pg_tx
from jobq.storage._pg_sql import migrations

#: the schema of jobq's tables, set as every session's search_path
SCHEMA = "jobq"
#: one node at a time creates or migrates the schema (held until commit)
_LOCK = "SELECT pg_advisory_xact_lock(7283501146239140865)"
_SCHEMA_EXISTS = "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'jobq')"
_HAS_VERSION_TABLE = "SELECT to_regclass(%s) IS NOT NULL"
#: what a migration computes in Python after its script, in its transaction: values
#: whose rule lives in the domain (written once, not again in SQL)
BACKFILLS: dict[int, Callable[[AsyncConnection[Any]], Awaitable[None]]] = {
    7: _pg_tx.backfill_counters}
_CREATE = ("CREATE SCHEMA jobq",
           "CREATE TABLE jobq.jobq_schema_version (version integer NOT NULL)")


async def _value(conn: AsyncConnection[Any], sql: str, params: Any = None) -> Any:
    cursor = await conn.execute(sql, params)
    row = await cursor.fetchone()
    return row[0] if row else None


async def migrate(conn: AsyncConnection[Any], name: str) -> int:
    """Check the database and apply the migrations it lacks, in the caller's
    transaction; returns the schema version. `name` names the database in messages."""
    await conn.execute(_LOCK)
    latest = migrations()[-1][0]
    own_schema = bool(await _value(conn, _SCHEMA_EXISTS))
    if own_schema:
        if not await _value(conn, _HAS_VERSION_TABLE, ("jobq.jobq_schema_version",)):
            raise errors.DatabaseRefused(
                f"{name}: its schema {SCHEMA!r} was not made by jobq (it has no"
                " jobq_schema_version table): use another database")
        version = await _value(conn, "SELECT max(version) FROM jobq.jobq_schema_version")
    elif await _value(conn, _HAS_VERSION_TABLE, ("public.jobq_schema_version",)):
        version = await _value(conn, "SELECT max(version) FROM public.jobq_schema_version")
    else:
        version = 0
    version = int(version or 0)
    if version > latest:
        raise errors.DatabaseRefused(
            f"{name}: schema version {version} is newer than this jobq's ({latest}):"
            " run a newer jobq")
    if version == latest:
        return latest
    if not own_schema:
        await conn.execute(_CREATE[0])
        if version == 0:
            await conn.execute(_CREATE[1])
    await conn.execute("SET LOCAL search_path = jobq")
    # a fresh database runs every migration from 0001: one path for new and old
    for number, script in migrations():
        if number > version:
            await conn.execute(script.encode())
            if number in BACKFILLS:
                await BACKFILLS[number](conn)
    await conn.execute("INSERT INTO jobq.jobq_schema_version (version) VALUES (%s)",
                       (latest,))
    return latest
