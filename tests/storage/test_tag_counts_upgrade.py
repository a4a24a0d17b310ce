"""Migration 0006 (counts per tag): a database at the schema before it, holding tagged
jobs in every state (the released rows of `data/`, brought up to schema 5), is served
with counts by tag equal to the jobs' real ones after `jobq serve` upgraded it, also after
writes that move tagged jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import helpers
from tests.storage import release_data

#: the schema this test upgrades from: the one before migration 0006
BEFORE = 5
STATES = ("pending", "running", "finished", "deleted")


def _tags(client: httpx.Client, project: int) -> set[str]:
    lines = client.get(f"/jobq/{project}/list", params={
        "state": list(STATES[:3]), "count": 1000}).text.splitlines()
    return {t for line in lines for t in (httpx.Response(200, content=line).json()
                                           .get("tags") or ())}


def _check_counts(client: httpx.Client, project: int, tags: set[str]) -> int:
    """Every tag's count (has and lacks) of each queue equals the jobs `list` shows;
    returns how many tagged jobs were seen."""
    seen = 0
    for state in STATES[:3]:
        every = client.get(f"/jobq/{project}/count", params={"state": state}).json()
        for tag in sorted(tags):
            listed = client.get(f"/jobq/{project}/list", params={
                "state": state, "has_tag": tag, "count": 1000}).text.splitlines()
            has = client.get(f"/jobq/{project}/count",
                             params={"state": state, "has_tag": tag}).json()
            lacks = client.get(f"/jobq/{project}/count",
                               params={"state": state, "lacks_tag": tag}).json()
            assert (has, lacks) == (len(listed), every - len(listed)), (state, tag)
            seen += has
    return seen


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schema_5_database_gets_correct_tag_counts(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    release_data.at_schema(backend, db_url, BEFORE)
    server = helpers.Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        with server.client() as client:
            tags = _tags(client, 7)
            assert {"t1", "t2", "t3", "done"} <= tags, "the released rows have tagged jobs"
            assert _check_counts(client, 7, tags) >= 4
            # writes after the upgrade move the counts: finish, retag, delete, remove
            assert client.post("/jobq/7/push", content=b'{"spider":"alpha","tags":["t1","t9"]}'
                               ).status_code == 200
            assert client.post("/jobq/7/update", content=(
                b'{"key":"7/1/4","state":"running","tags":["t1"]}\n'
                b'{"key":"7/2/2","state":"deleted"}')).status_code == 200
            assert client.post("/jobs/7/1/3", json={"tags": ["t2", "t2"]}).status_code == 200
            assert client.delete("/jobs/7/1/1").status_code in (200, 204)
            tags = _tags(client, 7) | {"t2", "t3", "done", "t9"}
            _check_counts(client, 7, tags)
    finally:
        server.stop()
    # the kept rows themselves: each tag's jobs per spider and state, as job_tags has them
    prefix = "" if backend == "sqlite" else "jobq."
    real_sql = ("SELECT t.project_id, t.tag, t.spider_id, j.state, count(*)"
                f" FROM {prefix}job_tags t JOIN {prefix}jobs j ON j.project_id = t.project_id"
                " AND j.spider_id = t.spider_id AND j.job_no = t.job_no GROUP BY 1, 2, 3, 4")
    kept_sql = f"SELECT project_id, tag, spider_id, state, n FROM {prefix}tag_counts WHERE n <> 0"
    if backend == "sqlite":
        with sqlite3.connect(db_url[len("sqlite:///"):]) as lite:
            real, kept = lite.execute(real_sql).fetchall(), lite.execute(kept_sql).fetchall()
    else:
        with psycopg.connect(db_url) as pg:
            real, kept = pg.execute(real_sql).fetchall(), pg.execute(kept_sql).fetchall()
    assert sorted(kept) == sorted(real) and real
