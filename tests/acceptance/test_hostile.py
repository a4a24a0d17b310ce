"""Hostile input, one table for both backends: every case is a request a client can send,
with the one answer (status and a piece of its body) that both a SQLite and a PostgreSQL
`jobq serve` must give. Each case runs in a project of its own, seeded alike, and checks
that the request changed nothing there (a rejected write is not half applied; a read
writes nothing). A 5xx is never an answer to input: 503 means only "the database is
unavailable, retry"."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Any

import httpx
import orjson
import pytest

HUGE = str(2**63 - 1)
#: more spiders than SQLite allows branches in one compound SELECT (500)
MANY = 600


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    #: `$p` is the project; `$pending`, `$running`, `$finished` are its seeded jobs' keys
    #: and `$pending_job` the spider/job part of the pending one
    path: str
    status: int
    #: a piece of the answer's body that names what is wrong (or what was found)
    says: str
    body: bytes = b""
    #: rows a 200 list answers with
    rows: int | None = None
    #: seed MANY more spiders, one pending job each (spider names m0, m1, ...)
    many_spiders: bool = False


#: an object nested deeper than the server stores JSON (it parses up to 1,024 levels)
DEEP = b'{"x": ' + b"[" * 300 + b"]" * 300 + b"}"
MANY_SPIDERS = "&".join(f"spider=m{i}" for i in range(MANY))

CASES = [
    # -- issue 8 item 1: `count + start` must not overflow 64 bits -----------------------
    Case("list-states-huge-start", "GET",
         f"/jobq/$p/list?state=pending&state=finished&start={HUGE}", 200, "", rows=0),
    Case("list-spiders-huge-start", "GET",
         f"/jobq/$p/list?state=finished&spider=s&spider=t&start={HUGE}", 200, "", rows=0),
    Case("list-huge-count", "GET",
         f"/jobq/$p/list?state=pending&state=running&state=finished&count={HUGE}&start=1",
         400, "count: at most"),
    Case("list-huge-start-one-queue", "GET", f"/jobq/$p/list?start={HUGE}", 200, "", rows=0),
    Case("count-huge-start", "GET",
         f"/jobq/$p/count?state=pending&state=finished&start={HUGE}", 200, "2"),
    Case("summary-huge-start", "GET", f"/jobq/$p/summary?start={HUGE}", 200, '"pending"'),
    # -- issue 8 item 2: a filter naming many spiders ------------------------------------
    Case("list-many-spiders", "GET", f"/jobq/$p/list?state=pending&{MANY_SPIDERS}", 200,
         '"spider":"m', rows=MANY, many_spiders=True),
    Case("list-many-spiders-states", "GET",
         f"/jobq/$p/list?state=pending&state=finished&count=7&start=3&{MANY_SPIDERS}",
         200, '"spider":"m', rows=7, many_spiders=True),
    Case("count-many-spiders", "GET",
         f"/jobq/$p/count?state=pending&state=running&startts=1&{MANY_SPIDERS}",
         200, str(MANY), many_spiders=True),
    Case("count-many-spiders-tag", "GET",
         f"/jobq/$p/count?state=pending&state=finished&has_tag=t1&{MANY_SPIDERS}",
         200, "0", many_spiders=True),
    # -- issue 8 item 3: startjob's parameters are checked as update checks fields -------
    Case("startjob-nul-tag", "POST", "/jobq/$p/startjob", 400, "NUL",
         body=b'{"tags": ["a\\u0000b"]}'),
    Case("startjob-long-tag", "POST", "/jobq/$p/startjob", 400,
         "start parameters: tags[0]: longer than 255", body=orjson.dumps({"tags": ["x" * 256]})),
    Case("startjob-tag-not-string", "POST", "/jobq/$p/startjob", 400,
         "start parameters: tags[0]: expected a non-empty string", body=b'{"tags": [7]}'),
    Case("startjob-tags-not-list", "POST", "/jobq/$p/startjob", 400,
         "start parameters: tags: expected a list", body=b'{"tags": "x"}'),
    Case("startjob-nul-field", "POST", "/jobq/$p/startjob", 400,
         "start parameters: note contains a NUL", body=b'{"note": "a\\u0000"}'),
    Case("startjob-botgroup-number", "POST", "/jobq/$p/startjob", 400,
         "botgroup: expected a non-empty string", body=b'{"botgroup": 5}'),
    Case("startjob-two-lines", "POST", "/jobq/$p/startjob", 400, "at most one",
         body=b'{"a": 1}\n{"b": 2}'),
    # -- issue 8 item 4: NUL in metadata and settings ------------------------------------
    Case("update-nul-close-reason", "POST", "/jobq/$p/update", 400,
         "line 1: close_reason contains a NUL",
         body=b'{"key": "$finished", "close_reason": "a\\u0000"}'),
    Case("meta-post-nul", "POST", "/jobs/$finished", 400, "line 1: close_reason contains a NUL",
         body=b'{"close_reason": "a\\u0000"}'),
    Case("meta-field-nul", "POST", "/jobs/$finished/close_reason", 400, "NUL",
         body=b'"a\\u0000"'),
    Case("meta-nested-nul-key", "POST", "/jobs/$finished", 400,
         "line 1: a field name in x contains a NUL",
         body=b'{"x": {"a\\u0000": 1}}'),
    Case("push-nul-value", "POST", "/jobq/$p/push", 400, "line 2: close_reason contains a NUL",
         body=b'{"spider": "s"}\n{"spider": "s", "close_reason": "a\\u0000"}'),
    Case("push-nul-in-list", "POST", "/jobq/$p/push", 400, "line 1: args[1] contains a NUL",
         body=b'{"spider": "s", "args": ["ok", "a\\u0000"]}'),
    Case("settings-nul-key", "POST", "/projects/$p/settings", 400,
         "settings: a field name contains a NUL",
         body=b'{"a\\u0000b": 1}'),
    Case("settings-nul-value", "POST", "/projects/$p/settings", 400,
         "settings: k[0] contains a NUL", body=b'{"k": ["v\\u0000"]}'),
    Case("settings-nul-name", "POST", "/projects/$p/settings/a%00b", 400, "NUL", body=b"1"),
    Case("botgroup-delete-nul", "DELETE", "/botgroups/a%00b", 400, "botgroup"),
    Case("filter-close-reason", "GET",
         '/jobq/$p/list?state=finished&state=running&filter=["close_reason","=",["ok"]]',
         200, "$finished", rows=1),
    Case("filter-close-reason-only-strings", "GET",
         '/jobq/$p/list?state=running&filter=["close_reason","=",["[\\"x\\"]"]]',
         200, "", rows=0),
    Case("count-close-reason", "GET",
         '/jobq/$p/count?state=running&filter=["close_reason","=",["[\\"x\\"]"]]', 200, "0"),
    Case("list-nul-filter-value", "GET",
         '/jobq/$p/list?filter=["close_reason","=",["a\\u0000"]]', 400, "filter"),
    # -- JSON nested deeper than can be stored -------------------------------------------
    Case("push-deep", "POST", "/jobq/$p/push", 400, "line 2: nested more than 254 levels",
         body=b'{"spider": "s"}\n{"spider": "s", "x": ' + b"[" * 300 + b"]" * 300 + b"}"),
    Case("push-deep-unique", "POST", "/jobq/$p/push", 400, "line 1: nested more than",
         body=b'{"spider": "s", "unique": ' + b"[" * 300 + b"]" * 300 + b"}"),
    Case("update-deep", "POST", "/jobq/$p/update", 400, "line 1: nested more than",
         body=b'{"key": "$pending", "x": ' + b"[" * 300 + b"]" * 300 + b"}"),
    Case("meta-deep", "POST", "/jobs/$pending", 400, "line 1: nested more than", body=DEEP),
    Case("startjob-deep", "POST", "/jobq/$p/startjob", 400, "start parameters: nested",
         body=DEEP),
    Case("settings-deep", "POST", "/projects/$p/settings", 400, "settings: nested",
         body=DEEP),
    # -- worker ids that no worker can have (a NUL was a 500 on PostgreSQL) ----------------
    Case("startjob-worker-nul", "POST", "/jobq/$p/startjob", 404, "no registered worker",
         body=b'{"worker_id": "ab\\u0000cd"}'),
    Case("heartbeat-worker-nul", "POST", "/workers/ab%00cd/heartbeat", 404,
         "no registered worker", body=b'{"jobs": []}'),
    Case("spiders-worker-odd", "POST", "/workers/NOT-AN-ID/spiders", 404,
         "no registered worker", body=b'{"spiders": ["s"]}'),
    # -- the project settings jobq reads (leases, job data) -------------------------------
    Case("settings-requeue-lost", "POST", "/projects/$p/settings", 400,
         "setting requeue_lost: expected true or false", body=b'{"requeue_lost": "yes"}'),
    Case("settings-max-retries", "POST", "/projects/$p/settings", 400,
         "setting max_retries: expected an integer >= 0", body=b'{"max_retries": -1}'),
    Case("settings-max-retries-float", "POST", "/projects/$p/settings/max_retries", 400,
         "setting max_retries: expected an integer >= 0", body=b"2.5"),
    Case("settings-max-runtime", "POST", "/projects/$p/settings/max_runtime", 400,
         "setting max_runtime: expected a number of seconds > 0, or null", body=b'"1h"'),
    Case("settings-retention", "POST", "/projects/$p/settings", 400,
         "setting data_retention_days: expected a number of days >= 0, or null",
         body=b'{"data_retention_days": true}'),
    # -- the bad-input tests before these (tests/acceptance/test_http.py) ----------------
    Case("push-not-json", "POST", "/jobq/$p/push", 400, "line 2",
         body=b'{"spider": "s"}\n{"spider": "s"\n{"spider": "s"}'),
    Case("push-not-utf8", "POST", "/jobq/$p/push", 400, "line 1", body=b"\xff\xfe"),
    Case("push-priority", "POST", "/jobq/$p/push", 400, "line 1: priority",
         body=b'{"spider": "s", "priority": 5}'),
    Case("push-units", "POST", "/jobq/$p/push", 400, "line 1: units",
         body=b'{"spider": "s", "units": 0}'),
    Case("push-tags", "POST", "/jobq/$p/push", 400, "line 1: tags",
         body=b'{"spider": "s", "tags": "a"}'),
    Case("push-no-spider", "POST", "/jobq/$p/push", 400, "'spider' is required",
         body=b'{"priority": 1}'),
    Case("push-nul-spider", "POST", "/jobq/$p/push", 400, "spider: contains a NUL",
         body=b'{"spider": "a\\u0000b"}'),
    Case("push-nul-unique", "POST", "/jobq/$p/push", 400, "line 1: unique contains a NUL",
         body=b'{"spider": "s", "unique": "u\\u0000"}'),
    Case("push-state", "POST", "/jobq/$p/push", 400, "line 1: state",
         body=b'{"spider": "s", "state": "done"}'),
    Case("push-not-object", "POST", "/jobq/$p/push", 400, "expected a JSON object",
         body=b"null"),
    Case("update-state", "POST", "/jobq/$p/update", 400, "line 1: state",
         body=b'{"key": "$pending", "state": "done"}'),
    Case("update-no-key", "POST", "/jobq/$p/update", 400, "'key' is required",
         body=b'{"state": "finished"}'),
    Case("update-tags", "POST", "/jobq/$p/update", 400, "line 1: tags",
         body=b'{"key": "$pending", "tags": "x"}'),
    Case("update-refused-move", "POST", "/jobq/$p/update", 409, "cannot go from finished",
         body=b'{"key": "$pending", "state": "running"}\n{"key": "$finished", "state": "running"}'),
    Case("cancel-not-objects", "POST", "/jobq/$p/cancel", 400, "item 1", body=b"[1]"),
    Case("cancel-body-and-count", "POST", "/jobq/$p/cancel?count=1", 400, "count",
         body=b'[{"key": "$pending"}]'),
    Case("list-state", "GET", "/jobq/$p/list?state=done", 400, "state"),
    Case("list-deleted", "GET", "/jobq/$p/list?state=deleted", 400, "deleted"),
    Case("list-count", "GET", "/jobq/$p/list?count=abc", 400, "count"),
    Case("list-count-over-max", "GET", f"/jobq/$p/list?count={10**9}", 400, "count"),
    Case("list-start-negative", "GET", "/jobq/$p/list?start=-1", 400, "start"),
    Case("list-stop-never", "GET", "/jobq/$p/list?stop=$pending", 400, "stop"),
    Case("list-filter", "GET", '/jobq/$p/list?filter=["foo","=",["a"]]', 400, "filter"),
    Case("list-nul-tag", "GET", "/jobq/$p/list?has_tag=x%00y", 400, "has_tag"),
    Case("list-nul-spider", "GET", "/jobq/$p/list?spider=x%00y", 400, "spider"),
    Case("list-huge-stop", "GET", "/jobq/$p/list?stop=$p/999999999999999999/1", 400, "stop"),
    Case("jobsummary-key", "GET", "/jobq/$p/jobsummary?key=bad", 400, "key"),
    Case("settings-botgroups", "POST", "/projects/$p/settings", 400, "botgroups",
         body=b'{"botgroups": ["g\\u0000"]}'),
    Case("spider-name-long", "GET", f"/ids/$p/spider/{'x' * 300}", 400, "255"),
    Case("max-running", "POST", "/botgroups/g$p/max_running", 400, "max_running",
         body=b'"x"'),
    Case("list-format", "GET", "/jobq/$p/list?format=yaml", 400, "format"),
    Case("list-csv-fields", "GET", "/jobq/$p/list?format=csv", 400, "fields"),
    Case("list-csv-sep", "GET", "/jobq/$p/list?format=csv&fields=key&sep=ab", 400, "sep"),
    Case("list-unknown-parameter", "GET", "/jobq/$p/list?bogus=1", 400, "bogus"),
    Case("list-startts", "GET", "/jobq/$p/list?startts=-1", 400, "startts"),
    Case("list-stop-other-project", "GET", "/jobq/$p/list?stop=1/1/1", 400, "stop"),
    Case("summary-queue", "GET", "/jobq/$p/summary/done", 400, "done"),
    Case("project-id", "GET", "/jobq/abc/list", 400, "abc"),
    Case("job-key", "GET", "/jobs/$p/x/1", 400, "x"),
    Case("cancel-job-key", "POST", "/jobq/$p/x/1/cancel", 400, "x"),
    Case("lastjobsummary-startafter", "GET", "/spiders/$p/lastjobsummary?startafter=x", 400,
         "startafter"),
    Case("lastjobsummary-count", "GET", "/spiders/$p/lastjobsummary?count=-1", 400, "count"),
    Case("meta-not-object", "POST", "/jobs/$pending", 400, "expected a JSON object",
         body=b'"just a string"'),
    Case("settings-not-object", "POST", "/projects/$p/settings", 400, "expected a JSON object",
         body=b"[1]"),
    Case("cancel-bad-key", "POST", "/jobq/$p/cancel", 400, "item 1: key",
         body=b'[{"key": "x"}]'),
]


def _lines(response: httpx.Response) -> list[Any]:
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def _seed(http: httpx.Client, project: int, many_spiders: bool) -> dict[str, str]:
    """Three jobs: pending (tagged), running (a close_reason that is not a string) and
    finished (close_reason "ok"); a setting; with `many_spiders`, MANY spiders more."""
    jobs = [
        {"spider": "s", "tags": ["t1"]},
        {"spider": "s", "state": "running", "close_reason": ["x"]},
        {"spider": "t", "state": "finished", "close_reason": "ok"},
    ]
    if many_spiders:
        jobs += [{"spider": f"m{i}"} for i in range(MANY)]
    body = b"\n".join(orjson.dumps(job) for job in jobs)
    answer = http.post(f"/jobq/{project}/push", content=body)
    assert answer.status_code == 200, answer.text
    keys = [row["key"] for row in _lines(answer)]
    assert http.post(f"/projects/{project}/settings", content=b'{"a": 1}').status_code == 200
    return {"p": str(project), "pending": keys[0], "running": keys[1], "finished": keys[2],
            "pending_job": keys[0].split("/", 1)[1]}


def _state(http: httpx.Client, project: int) -> dict[str, Any]:
    """What a client can see of a project: its jobs with their whole metadata, its queue
    counts, its settings, its spiders' newest jobs."""
    listed = http.get(f"/jobq/{project}/list", params={
        "state": ["pending", "running", "finished"], "count": 10_000})
    assert listed.status_code == 200, listed.text
    jobs = {}
    for row in _lines(listed):
        answer = http.get(f"/jobs/{row['key']}")
        assert answer.status_code == 200, answer.text
        jobs[row["key"]] = _lines(answer)
    summary = http.get(f"/projects/{project}/jobsummary").json()
    settings = http.get(f"/projects/{project}/settings").json()
    last = [{k: v for k, v in row.items() if k != "elapsed"}
            for row in _lines(http.get(f"/spiders/{project}/lastjobsummary"))]
    return {"jobs": jobs, "summary": summary, "settings": settings, "last": last}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(http: httpx.Client, project: int, case: Case) -> None:
    names = _seed(http, project, case.many_spiders)
    before = _state(http, project)
    path = Template(case.path).substitute(names)
    body = Template(case.body.decode("latin-1")).substitute(names).encode("latin-1")
    response = http.request(case.method, path, content=body)
    assert response.status_code == case.status, (path, response.text)
    assert Template(case.says).substitute(names) in response.text, (path, response.text)
    if case.rows is not None:
        assert len(_lines(response)) == case.rows, (path, response.text)
    assert "X-Request-ID" in response.headers or "x-request-id" in response.headers
    assert _state(http, project) == before, path
