"""Migration 0007 (outcome counters stored with the metadata): a database at the schema
before it (the released rows of `data/`, brought up to schema 6) whose jobs have
`scrapystats` is served, after `jobq serve` upgraded it, with the counters on the plain
list rows of its finished jobs, as the official client reads them; writes after the
upgrade keep them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from scrapinghub import HubstorageClient

from tests import helpers
from tests.storage import release_data

#: the schema this test upgrades from: the one before migration 0007
BEFORE = 6
STATS = {"item_scraped_count": 12, "response_received_count": 30, "log_count/INFO": 40,
         "log_count/WARNING": 3, "log_count/ERROR": 2}
COUNTERS = {"items": 12, "pages": 30, "errors": 2, "logs": 45}
OTHER = {"item_scraped_count": 5, "log_count/DEBUG": 9}
OTHER_COUNTERS = {"items": 5, "pages": 0, "errors": 0, "logs": 9}
#: the released rows of project 7: (spider, job) -> the stats given to its metadata
#: (1/1 finished, 1/2 deleted, 1/3 pending, 2/1 running)
GIVEN: dict[tuple[int, int], Any] = {(1, 1): STATS, (1, 2): STATS, (1, 3): STATS,
                                      (2, 1): OTHER}


def _give_stats(conn: Any) -> None:
    """Put GIVEN's stats into the released jobs' metadata (SQL of either backend)."""
    for (spider, job), stats in GIVEN.items():
        if isinstance(conn, sqlite3.Connection):
            conn.execute("UPDATE jobs SET meta = json_set(meta, '$.scrapystats', json(?))"
                         " WHERE project_id = 7 AND spider_id = ? AND job_no = ?",
                         (json.dumps(stats), spider, job))
        else:
            conn.execute("UPDATE jobs SET meta = (meta::jsonb || jsonb_build_object("
                         "'scrapystats', %s::jsonb))::text"
                         " WHERE project_id = 7 AND spider_id = %s AND job_no = %s",
                         (json.dumps(stats), spider, job))


def _counters(rows: list[dict[str, Any]]) -> dict[str, dict[str, int] | None]:
    return {row["key"]: {n: row[n] for n in COUNTERS if n in row} or None for row in rows}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schema_6_database_lists_counters_of_finished_jobs(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    release_data.at_schema(backend, db_url, BEFORE, _give_stats)
    server = helpers.Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        hs = HubstorageClient(auth=server.admin_key, endpoint=server.url)
        try:
            jobq = hs.get_project(7).jobq
            assert _counters(list(jobq.list())) == {"7/1/1": COUNTERS}
            every = _counters(list(jobq.list(state=["pending", "running", "finished"])))
            assert every == {"7/1/1": COUNTERS, "7/1/3": None, "7/1/4": None, "7/2/1": None,
                             "7/2/2": None}, "only finished rows carry them"
            # writes after the upgrade: the running job finishes, the pending one too
            jobq.finish("7/2/1")
            jobq.finish("7/1/3")
            assert _counters(list(jobq.list())) == {
                "7/1/3": COUNTERS, "7/2/1": OTHER_COUNTERS, "7/1/1": COUNTERS}
            summary = {q["name"]: q for q in jobq.summary()}
            assert _counters(summary["finished"]["summary"])["7/1/1"] == COUNTERS
        finally:
            hs.close()
    finally:
        server.stop()
    # the column itself: set for each job with stats (the deleted one too), else NULL
    prefix = "" if backend == "sqlite" else "jobq."
    sql = f"SELECT spider_id, job_no, counters FROM {prefix}jobs WHERE project_id = 7"
    if backend == "sqlite":
        with sqlite3.connect(db_url[len("sqlite:///"):]) as lite:
            stored = lite.execute(sql).fetchall()
    else:
        with psycopg.connect(db_url) as pg:
            stored = pg.execute(sql).fetchall()
    expected = {(1, 1): COUNTERS, (1, 2): COUNTERS, (1, 3): COUNTERS, (2, 1): OTHER_COUNTERS}
    assert {(s, j): json.loads(c) for s, j, c in stored if c is not None} == expected
    assert sum(c is None for _, _, c in stored) == len(stored) - len(expected)
