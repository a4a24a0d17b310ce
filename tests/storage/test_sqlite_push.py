"""SQLite push writes its rows with multi-row INSERTs, within the parameters per statement
that the SQLite build allows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobq.domain.jobs import State
from jobq.domain.records import NewJob
from jobq.storage import _sqlite_tx as tx
from jobq.storage.sqlite import SqliteStorage


@pytest.mark.parametrize("limit", [999, 32766])
def test_a_push_stays_within_the_parameters_a_statement_may_have(
    tmp_path: Path, limit: int
) -> None:
    storage = SqliteStorage(tmp_path / "jobq.sqlite3")
    storage.migrate()
    conn = storage._connect()
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)  # 999: before SQLite 3.32
    jobs = [NewJob("s", State.PENDING, 2, None, None, {"line": i}) for i in range(1300)]
    conn.execute("BEGIN IMMEDIATE")
    pushed = tx.push(conn, 7, jobs, "tester", 1_796_000_000_000)
    conn.execute("COMMIT")
    assert [p.key.job for p in pushed if p.key is not None] == list(range(1, 1301))
    assert conn.execute("SELECT count(*), min(job_no), max(job_no) FROM jobs").fetchone() == (
        1300, 1, 1300)
    conn.close()
