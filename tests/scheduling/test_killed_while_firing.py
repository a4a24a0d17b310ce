"""A node killed in the middle of firing a tick (PostgreSQL): its transaction has moved
the schedule's next tick and recorded the tick, and waits to push the job, when the node
gets `kill -9`. Nothing of it may remain, and another node must fire that tick, once.

The test holds a lock on the spider's row, so the node's fire transaction stops exactly at
the push (it has already claimed the tick); no sleeping for a lucky moment. `catch_up: all`,
so the tick still fires however long the second node takes to start."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import psycopg

from tests import helpers

PROJECT = 88


def _waiting_push(conn: psycopg.Connection[tuple[object, ...]], db: str) -> int | None:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
        " AND query LIKE 'UPDATE spiders%%'", (db,)).fetchone()
    return int(row[0]) if row else None


def test_a_tick_claimed_by_a_killed_node_fires_once_elsewhere(pg_url: str,
                                                               tmp_path: Path) -> None:
    first = helpers.Server(db=pg_url, log=tmp_path / "first.log").start()
    second = helpers.Server(db=pg_url, log=tmp_path / "second.log")
    db = pg_url.rpartition("/")[2]
    try:
        with first.client() as http:
            http.post(f"/jobq/{PROJECT}/push", content=b'{"spider": "books", "state": "finished"}')
            with psycopg.connect(pg_url) as blocker:
                # jobq's tables live in its schema; holds the row until rollback
                blocker.execute("SELECT 1 FROM jobq.spiders WHERE project_id = %s"
                                " AND name = 'books' FOR UPDATE", (PROJECT,))
                made = http.post(f"/schedules/{PROJECT}", json={
                    "spider": "books", "every": "2s", "overlap": "allow",
                    "catch_up": "all"}).json()["schedule"]
                tick = made["next_run_time"]
                with psycopg.connect(helpers.PG_BASE_URL, autocommit=True) as watcher:
                    deadline = time.monotonic() + 20
                    while _waiting_push(watcher, db) != 1:
                        assert time.monotonic() < deadline, "the node never started firing"
                        time.sleep(0.05)
                first.kill()  # mid-transaction: the tick is claimed, its job not pushed
                second.start()
                blocker.rollback()
            deadline = time.monotonic() + 20
            rows: list[dict[str, object]] = []
            with second.client() as other:
                while time.monotonic() < deadline:
                    rows = [orjson.loads(line) for line in other.get(
                        f"/jobq/{PROJECT}/list", params={
                            "state": "pending", "jobmeta": ["scheduled_for"]}).content.split()]
                    if any(r["scheduled_for"] == tick for r in rows):
                        break
                    time.sleep(0.1)
                other.post(f"/schedules/{PROJECT}/{made['id']}/pause")
                ticks = other.get(f"/schedules/{PROJECT}/{made['id']}").json()["schedule"]
                rows = [orjson.loads(line) for line in other.get(
                    f"/jobq/{PROJECT}/list", params={
                        "state": "pending", "jobmeta": ["scheduled_for"]}).content.split()]
    finally:
        first.kill()
        second.stop()
    fired = [r["scheduled_for"] for r in rows]
    assert fired.count(tick) == 1, fired  # fired by the second node, once
    assert len(fired) == len(set(fired))
    recorded = [t["tick"] for t in ticks["ticks"]]
    assert recorded.count(tick) == 1
