"""Job data over plain HTTP: idempotent batches, who may write, formats, limits, and bad
input (a clear 4xx naming the line or parameter, nothing stored), on both backends."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import subprocess
from typing import Any

import httpx
import msgpack
import psycopg
import pytest

from tests import helpers
from tests.jobdata.conftest import finish, running_job


def jl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def post(http: httpx.Client, path: str, records: list[dict[str, Any]] | bytes,
         start: int | None = None, gz: bool = True, **kwargs: Any) -> httpx.Response:
    body = records if isinstance(records, bytes) else jl(records)
    headers = {"content-encoding": "gzip"} if gz else {}
    params = {} if start is None else {"start": start}
    return http.post(path, content=gzip.compress(body) if gz else body, headers=headers,
                     params=params, **kwargs)


def rows(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return [json.loads(line) for line in answer.content.splitlines()]


def stored(http: httpx.Client, key: str, kind: str = "items") -> list[dict[str, Any]]:
    return rows(http.get(f"/{kind}/{key}"))


def batch(lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(lo, hi)]


# -- writes ------------------------------------------------------------------------------


def test_retried_batches_never_duplicate(http: httpx.Client, project: int) -> None:
    key, _ = running_job(http, project)
    assert post(http, f"/items/{key}", batch(0, 5), start=0).status_code == 200
    assert post(http, f"/items/{key}", batch(0, 5), start=0).status_code == 200  # a retry
    assert post(http, f"/items/{key}", batch(5, 8), start=5).status_code == 200
    assert post(http, f"/items/{key}", batch(3, 10), start=3).status_code == 200  # overlaps
    assert post(http, f"/items/{key}", batch(10, 11)).status_code == 200  # no start: appends
    assert stored(http, key) == batch(0, 11)
    stats = http.get(f"/items/{key}/stats").json()
    assert stats["totals"]["input_values"] == 11 and stats["counts"] == {"i": 11}


def test_a_gap_before_start_is_refused(http: httpx.Client, project: int) -> None:
    key, _ = running_job(http, project)
    post(http, f"/items/{key}", batch(0, 2), start=0)
    answer = post(http, f"/items/{key}", batch(5, 6), start=5)
    assert answer.status_code == 400
    assert "start: 5 does not match the next index 2" in answer.text
    assert stored(http, key) == batch(0, 2)


def test_a_job_token_writes_its_own_job_only(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, token = running_job(http, project)
    other, _ = running_job(http, project)
    with httpx.Client(base_url=data_server.url, auth=(key, token)) as job_http:
        assert post(job_http, f"/logs/{key}", [{"message": "hi", "level": 20,
                                                "time": 1}], start=0).status_code == 200
        refused = post(job_http, f"/logs/{other}", [{"message": "x", "level": 20, "time": 1}])
        assert refused.status_code == 403
        assert "not " + other in refused.text
        assert job_http.get(f"/logs/{other}").status_code == 403
        assert len(stored(job_http, key, "logs")) == 1
    assert stored(http, other, "logs") == []


def test_only_a_running_job_accepts_writes_but_an_admin_may(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, token = running_job(http, project)
    post(http, f"/items/{key}", batch(0, 1), start=0)
    finish(http, project, key)
    with httpx.Client(base_url=data_server.url, auth=(key, token)) as job_http:
        refused = post(job_http, f"/items/{key}", batch(1, 2), start=1)
    assert refused.status_code == 409
    assert "finished" in refused.text and key in refused.text
    assert post(http, f"/items/{key}", batch(1, 2), start=1).status_code == 200  # admin
    assert stored(http, key) == batch(0, 2)
    assert post(http, f"/items/{project}/9/9", batch(0, 1)).status_code == 404


def test_a_project_key_writes_running_jobs_of_its_project(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    made = subprocess.run([*helpers.jobq_command(), "keys", "create", "--project",
                           str(project), "--db", data_server.db],
                          capture_output=True, text=True, check=True)
    secret = made.stdout.strip()
    key, _ = running_job(http, project)
    pending = http.post(f"/jobq/{project}/push", json={"spider": "s"}).json()["key"]
    elsewhere, _ = running_job(http, project + 1000)
    with httpx.Client(base_url=data_server.url, auth=(secret, "")) as key_http:
        assert post(key_http, f"/requests/{key}", [{"url": "u"}]).status_code == 200
        refused = post(key_http, f"/requests/{pending}", [{"url": "u"}])
        assert refused.status_code == 409 and "pending" in refused.text
        assert post(key_http, f"/requests/{elsewhere}", [{"url": "u"}]).status_code == 403
    assert stored(http, key, "requests") == [{"url": "u"}]
    assert stored(http, pending, "requests") == []
    assert stored(http, elsewhere, "requests") == []


@pytest.mark.parametrize(("body", "gz", "status", "says"), [
    (b"not gzip at all", "header-only", 400, "not gzip"),
    (b'{"a": 1}\n{"b": \n', True, 400, "line 2 (index 1): invalid JSON"),
    (b'{"a": 1}\n[1, 2]\n', True, 400, "line 2 (index 1): expected a JSON object"),
    (b'{"a": 1}\n"text"\n', False, 400, "line 2 (index 1): expected a JSON object"),
    (b'{"a": "' + b"x" * (1024 * 1024) + b'"}\n', True, 413, "line 1 (index 0)"),
])
def test_bad_batches_store_nothing(http: httpx.Client, project: int, body: bytes,
                                   gz: bool | str, status: int, says: str) -> None:
    key, _ = running_job(http, project)
    if gz == "header-only":
        answer = http.post(f"/items/{key}", content=body, params={"start": 0},
                           headers={"content-encoding": "gzip"})
    else:
        answer = post(http, f"/items/{key}", body, start=0, gz=bool(gz))
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert stored(http, key) == []
    assert http.get(f"/items/{key}/stats").json()["totals"]["input_values"] == 0


@pytest.mark.parametrize(("params", "says"), [
    ({"start": "x"}, "start: 'x' is not an integer"),
    ({"start": "-1"}, "start: must be at least 0"),
    ({"bogus": "1"}, "unknown parameter(s): bogus"),
])
def test_bad_write_parameters(http: httpx.Client, project: int, params: dict[str, str],
                              says: str) -> None:
    key, _ = running_job(http, project)
    answer = http.post(f"/items/{key}", content=jl(batch(0, 1)), params=params)
    assert answer.status_code == 400 and says in answer.text
    assert stored(http, key) == []


def test_unsupported_content_encoding(http: httpx.Client, project: int) -> None:
    key, _ = running_job(http, project)
    answer = http.post(f"/items/{key}", content=b"{}", headers={"content-encoding": "br"})
    assert answer.status_code == 400 and "Content-Encoding" in answer.text


def test_cap_stores_up_to_it_answers_413_and_marks_the_job(
    http: httpx.Client, project: int
) -> None:
    assert http.post(f"/projects/{project}/settings",
                     json={"job_items_max": 5}).status_code == 200
    key, _ = running_job(http, project)
    assert post(http, f"/items/{key}", batch(0, 3), start=0).status_code == 200
    answer = post(http, f"/items/{key}", batch(3, 7), start=3)
    assert answer.status_code == 413
    assert "cap of 5 items" in answer.text and "job_items_max" in answer.text
    assert stored(http, key) == batch(0, 5)
    assert http.get(f"/jobs/{key}/items_truncated").json() is True
    assert post(http, f"/items/{key}", batch(7, 8), start=5).status_code == 413


def test_reserved_meta_fields_of_a_record_are_the_servers(
    http: httpx.Client, project: int
) -> None:
    key, _ = running_job(http, project)
    post(http, f"/items/{key}", [{"_key": "forged", "_ts": 1, "a": 1}, {}], start=0)
    assert stored(http, key) == [{"a": 1}, {}]
    keyed = rows(http.get(f"/items/{key}", params={"meta": "_key"}))
    assert keyed == [{"_key": f"{key}/0", "a": 1}, {"_key": f"{key}/1"}]


# -- reads -------------------------------------------------------------------------------


@pytest.fixture
def ten(http: httpx.Client, project: int) -> str:
    key, _ = running_job(http, project)
    records = [{"i": i, "name": f"n{i}", "tags": ["a"] if i % 3 == 0 else []}
               for i in range(10)]
    assert post(http, f"/items/{key}", records, start=0).status_code == 200
    return key


def test_formats(http: httpx.Client, ten: str) -> None:
    as_json = http.get(f"/items/{ten}", params={"format": "json", "count": 3})
    assert as_json.headers["content-type"].startswith("application/json")
    assert [r["i"] for r in as_json.json()] == [0, 1, 2]
    assert http.get(f"/items/{ten}", params={"format": "json", "count": 0}).json() == []
    packed = http.get(f"/items/{ten}", headers={"accept": "application/x-msgpack"},
                      params={"meta": "_key", "count": 2})
    assert packed.headers["content-type"] == "application/x-msgpack"
    unpacker = msgpack.Unpacker()
    unpacker.feed(packed.content)
    assert list(unpacker) == [{"i": 0, "name": "n0", "tags": ["a"], "_key": f"{ten}/0"},
                              {"i": 1, "name": "n1", "tags": [], "_key": f"{ten}/1"}]
    table = http.get(f"/items/{ten}", params={"format": "csv", "fields": "i,name",
                                              "include_headers": "1", "count": 2})
    assert list(csv.reader(io.StringIO(table.text))) == [["i", "name"], ["0", "n0"],
                                                        ["1", "n1"]]
    one = http.get(f"/items/{ten}/4", params={"meta": "_key"})
    assert one.json() == {"_key": f"{ten}/4", "i": 4, "name": "n4", "tags": []}
    assert http.get(f"/items/{ten}/10").status_code == 404


def test_meta_nodata_index_and_ts(http: httpx.Client, ten: str) -> None:
    both = rows(http.get(f"/items/{ten}", params={"meta": "_key,_ts", "nodata": "1",
                                                  "index": ["7", "2"]}))
    assert [r["_key"] for r in both] == [f"{ten}/7", f"{ten}/2"]
    assert all(set(r) == {"_key", "_ts"} for r in both)
    ts = both[0]["_ts"]
    assert rows(http.get(f"/items/{ten}", params={"startts": ts + 1})) == []
    assert len(rows(http.get(f"/items/{ten}", params={"startts": ts}))) == 10
    filtered = rows(http.get(f"/items/{ten}", params={
        "filter": ['["tags", "haselement", ["a"]]', '["i", ">", [0]]'], "meta": "_key"}))
    assert [(r["i"], r["_key"]) for r in filtered] == [(3, f"{ten}/3"), (6, f"{ten}/6"),
                                                       (9, f"{ten}/9")]


@pytest.mark.parametrize(("params", "says"), [
    ({"format": "xls"}, "format: unknown format 'xls'"),
    ({"filter": "[oops"}, "filter: '[oops' is not JSON"),
    ({"filter": '["i", "~", [1]]'}, "unknown operator '~'"),
    ({"filter": '["i", ">", [1, 2]]'}, "takes one value"),
    ({"filter": '{"i": 1}'}, "is not a triple"),
    ({"start": "1/2/3"}, "start: '1/2/3' is not a record key"),
    ({"start": "9/9/9/0"}, "is not a record of job"),
    ({"startafter": "x"}, "startafter:"),
    ({"index": "-1"}, "index: '-1' is not a record index"),
    ({"index": [str(i) for i in range(1001)]}, "index: at most 1000 a request"),
    ({"count": "many"}, "count: 'many' is not an integer"),
    ({"meta": "_secret"}, "meta: unknown meta field '_secret'"),
    ({"format": "csv"}, "fields: required with format=csv"),
    ({"what": "1"}, "unknown parameter(s): what"),
])
def test_bad_read_parameters(http: httpx.Client, ten: str, params: dict[str, Any],
                             says: str) -> None:
    answer = http.get(f"/items/{ten}", params=params)
    assert answer.status_code == 400, answer.text
    assert says in answer.text


def test_unknown_job_and_no_credentials(data_server: helpers.Server, http: httpx.Client,
                                        project: int) -> None:
    assert http.get(f"/items/{project}/1/99").status_code == 404
    assert http.get(f"/logs/{project}/1/99/stats").status_code == 404
    assert httpx.get(f"{data_server.url}/items/{project}/1/1").status_code == 401
    assert http.get(f"/items/{project}/1/x").status_code == 400


def test_reads_stream_and_head_sends_no_body(http: httpx.Client, ten: str) -> None:
    """A read goes out a part at a time (chunked, no Content-Length); HEAD runs the same
    checks and sends the headers only."""
    answer = http.get(f"/items/{ten}")
    assert answer.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in answer.headers
    assert len(rows(answer)) == 10
    head = http.head(f"/items/{ten}", params={"format": "csv", "fields": "i"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/csv")
    assert http.head(f"/items/{ten}", params={"format": "csv"}).status_code == 400
    project = ten.split("/")[0]
    assert http.head(f"/items/{project}/1/99").status_code == 404


def test_access_is_checked_before_the_request_is_read(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    """A caller without access to the job gets 403 whatever the query or body: never a
    400 that tells it about the request."""
    key, token = running_job(http, project)
    other, _ = running_job(http, project)
    bad_requests: list[tuple[str, str, dict[str, str], bytes]] = [
        ("GET", "", {"bogus": "1"}, b""),
        ("GET", "", {"count": "many"}, b""),
        ("GET", "/stats", {"bogus": "1"}, b""),
        ("GET", "/x", {}, b""),
        ("POST", "", {"start": "x"}, b"{}"),
        ("POST", "", {}, b'{"a": \n'),
    ]
    with httpx.Client(base_url=data_server.url, auth=(key, token)) as job_http:
        for method, tail, params, body in bad_requests:
            content = body if method == "POST" else None
            own = job_http.request(method, f"/items/{key}{tail}", params=params,
                                   content=content)
            assert own.status_code == 400, (method, tail, params, own.text)
            refused = job_http.request(method, f"/items/{other}{tail}", params=params,
                                       content=content)
            assert refused.status_code == 403, (method, tail, params, refused.text)
    assert stored(http, key) == stored(http, other) == []


def _rename_chunks_table(db: str, old: str, new: str) -> None:
    """Direct SQL: on PostgreSQL jobq's tables live in the schema `jobq`."""
    sql = f"ALTER TABLE {old} RENAME TO {new}"
    if db.startswith("sqlite"):
        with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
            conn.execute(sql)
    else:
        with psycopg.connect(db, autocommit=True, options="-c search_path=jobq") as conn:
            conn.execute(sql)


def test_a_read_failing_at_its_first_chunk_answers_its_error(
    data_server: helpers.Server, http: httpx.Client, ten: str
) -> None:
    """The first part of a streamed answer is read before the status goes out: a database
    failure there is a 500 with the request id, not a 200 cut short."""
    _rename_chunks_table(data_server.db, "job_data_chunks", "job_data_chunks_elsewhere")
    try:
        broken = http.get(f"/items/{ten}", headers={"X-Request-ID": "broken-read"})
    finally:
        _rename_chunks_table(data_server.db, "job_data_chunks_elsewhere", "job_data_chunks")
    assert broken.status_code == 500
    assert broken.text == "internal server error (request broken-read)\n"
    assert len(rows(http.get(f"/items/{ten}"))) == 10
