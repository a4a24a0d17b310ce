"""Both backends answer the same operations with the same bytes (timestamps aside), and
plain rows built as JSON text by the database (`list_page`, `summary`) are the bytes of the
rows built in Python (`render_row`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from jobq.core.credentials import JobTokens, Principal
from jobq.core.queue import JobQueue, ListRequest, RenderedRows, json_default
from jobq.domain.jobs import JobKey, State
from jobq.storage import open_storage

pytestmark = pytest.mark.anyio

ADMIN = Principal("admin", is_admin=True)
P = 53
_TIMES = re.compile(rb'("(?:ts|elapsed|\w+_time)":)\d+')
#: a spider name JSON must escape: quotes, backslash, control characters, beyond ASCII
ODD = 'we"ird\\ \n\t\x01\x1f\x7f é中😀\u2028'


async def _both_ways(queue: JobQueue, request: dict[str, Any]) -> bytes:
    """A list's rows built by the database, checked against the same rows built in
    Python."""
    page = await queue.list_page(ADMIN, P, ListRequest(**request))
    assert isinstance(page, RenderedRows)
    by_python = orjson.dumps(await queue.list_jobs(ADMIN, P, ListRequest(**request)))
    assert _TIMES.sub(rb"\1T", page.json_array()) == _TIMES.sub(rb"\1T", by_python), request
    assert page.rows() == orjson.loads(page.json_array())
    return page.json_array()


async def _session(url: str) -> list[bytes]:
    """A little of everything, as the HTTP layer would call it; every answer as JSON."""
    storage = open_storage(url)
    await storage.open()
    queue = JobQueue(storage, JobTokens("k" * 32), max_count=1000)
    out: list[Any] = []
    try:
        out.append(await queue.push(ADMIN, P, [
            {"spider": "a", "tags": ["x"], "custom": {"z": 1, "a": [1, 2]}},
            {"spider": "b", "priority": 4, "unique": "u1"},
            {"spider": "a", "state": "finished", "close_reason": "finished"},
            {"spider": "b", "unique": "u1"},
        ]))
        started = await queue.start(ADMIN, P, {"worker": "w1"})
        assert started is not None
        started.pop("auth")
        out.append(started)
        out.append(await queue.update(ADMIN, P, [{"key": "53/2/1", "state": "finished",
                                                  "items": 7, "scrapystats": {
                                                      "item_scraped_count": 7,
                                                      "log_count/INFO": 3}}]))
        out.append(await queue.update(ADMIN, P, [{"key": "53/1", "note": "all"}]))
        out.append(await queue.cancel(ADMIN, P, [{"key": "53/1/1"}], None))
        out.append(await queue.push(ADMIN, P, [
            {"spider": ODD, "state": "finished", "tags": ["t\"1", "é"],
             "scrapystats": {"log_count/ERROR": 2, "item_scraped_count": 10**15}},
            {"spider": ODD, "tags": [], "scrapystats": {}},
            {"spider": "c", "state": "finished", "scrapystats": "none"},
            {"spider": ODD, "state": "finished", "scrapystats": {"log_count/INFO": 1}},
        ]))
        out.append(await queue.update(ADMIN, P, [{"key": "53/3/3", "state": "deleted"}]))
        for states in ((State.FINISHED,), (State.PENDING, State.RUNNING, State.FINISHED)):
            out.append(await queue.list_jobs(ADMIN, P, ListRequest(states=states)))
            out.append(await _both_ways(queue, {"states": states}))
        for request in ({"states": (State.DELETED,)}, {"has_tags": ("x", "é")},
                        {"states": (State.RUNNING, State.FINISHED), "count": 2, "start": 1},
                        {"spiders": (ODD, "a"), "states": tuple(State)[:4]}):
            out.append(await _both_ways(queue, request))
        out.append(await queue.list_jobs(ADMIN, P, ListRequest(jobmeta=("custom", "items"))))
        out.append(await queue.summary(ADMIN, P, None, None, ListRequest()))
        out.append(await queue.count(ADMIN, P, ListRequest(has_tags=("x",))))
        out.append(await queue.jobsummary(ADMIN, P, [JobKey(P, 1, 1)], ["custom", "tags"]))
        out.append(await queue.last_jobs(ADMIN, P, None))
        for key in (JobKey(P, 1, 1), JobKey(P, 1, 2), JobKey(P, 2, 1)):
            out.append(await queue.job_meta(ADMIN, key))
        out.append(await queue.project_summary(P))
        out.append(await queue.project_jobsummary(P))
    finally:
        await storage.close()
    return [_TIMES.sub(rb"\1T", item if isinstance(item, bytes)
                       else orjson.dumps(item, default=json_default)) for item in out]


async def test_sqlite_and_postgres_answer_alike(tmp_path: Path, pg_url: str) -> None:
    sqlite = await _session(f"sqlite:///{tmp_path / 'jobq.sqlite3'}")
    postgres = await _session(pg_url)
    for number, (a, b) in enumerate(zip(sqlite, postgres, strict=True)):
        assert a == b, f"answer {number} differs"
