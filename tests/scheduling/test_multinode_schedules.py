"""A fixed-interval schedule on three `jobq serve` nodes sharing one database, for a
bounded time, with nodes killed (`kill -9`) and restarted while they fire: every tick is
pushed exactly once, none twice, none missed (`catch_up: all` keeps every due tick)."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import helpers

pytestmark = pytest.mark.slow

PROJECT = 77
RUN_SECONDS = 12.0
INTERVAL_MS = 1000


def _jobs(server: helpers.Server) -> list[dict[str, Any]]:
    with server.client() as http:
        answer = http.get(f"/jobq/{PROJECT}/list", params={
            "state": ["pending"], "count": 100_000,
            "jobmeta": ["scheduled_for", "schedule", "scheduled_by"]})
    assert answer.status_code == 200, answer.text
    return [orjson.loads(line) for line in answer.content.splitlines()]


def test_every_tick_once_on_three_nodes_with_kills(db_url: str, tmp_path: Path) -> None:
    nodes = [helpers.Server(db=db_url, log=tmp_path / f"node{i}.log") for i in range(3)]
    for node in nodes:
        node.start()
    try:
        with nodes[0].client() as http:
            made = http.post(f"/schedules/{PROJECT}", json={
                "spider": "books", "every": "1s", "overlap": "allow", "catch_up": "all",
                "catch_up_max": 100})
            assert made.status_code == 201, made.text
            schedule = made.json()["schedule"]
        rng = random.Random(13)
        deadline = time.monotonic() + RUN_SECONDS
        kills = 0
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.5))
            victim = nodes[rng.randrange(3)]
            victim.kill()  # mid-work, at a random moment of its firing loop
            kills += 1
            time.sleep(rng.uniform(0.1, 0.6))
            victim.start()
        survivor = next(n for n in nodes if n.process and n.process.poll() is None)
        with survivor.client() as http:
            paused = http.post(f"/schedules/{PROJECT}/{schedule['id']}/pause")
            assert paused.status_code == 200, paused.text
            last = paused.json()["schedule"]["last_run_time"]
        rows = _jobs(survivor)
    finally:
        for node in nodes:
            node.stop()
    assert kills >= 3
    fired = Counter(r["scheduled_for"] for r in rows)
    assert all(n == 1 for n in fired.values()), [t for t, n in fired.items() if n > 1]
    first = schedule["next_run_time"]
    expected = list(range(first, last + 1, INTERVAL_MS))
    assert sorted(fired) == expected  # none twice, none missed
    assert len(expected) >= RUN_SECONDS - 2
    assert {r["scheduled_by"] for r in rows} == {"periodicjobs"}
