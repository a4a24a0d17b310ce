"""The JobQ protocol on the wire (httpx against a real `jobq serve`): the seed's calls,
output formats, compression, credentials and every error path."""

from __future__ import annotations

import csv
import gzip
import io
import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import orjson
import pytest

from tests import helpers

UNAUTHORIZED = {"error": "Unauthorized", "message": "Unauthorized"}


def lines(response: httpx.Response) -> list[Any]:
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def push(http: httpx.Client, project: int, *jobs: dict[str, Any]) -> list[Any]:
    body = b"\n".join(orjson.dumps(job) for job in jobs)
    response = http.post(f"/jobq/{project}/push", content=body)
    assert response.status_code == 200, response.text
    return lines(response)


def finish_each(http: httpx.Client, project: int, n: int, spider: str = "s") -> list[str]:
    """n finished jobs, each finished in its own millisecond: keys, oldest first."""
    made = []
    for _ in range(n):
        (row,) = push(http, project, {"spider": spider})
        time.sleep(0.003)
        answer = http.post(f"/jobq/{project}/update",
                           content=orjson.dumps({"key": row["key"], "state": "finished"}))
        assert answer.status_code == 200
        made.append(row["key"])
    return made


def count(http: httpx.Client, project: int, *states: str) -> int:
    response = http.get(f"/jobq/{project}/count", params={"state": list(states or ["finished"])})
    assert response.status_code == 200
    value: int = response.json()
    return value


def project_key(server: helpers.Server, project: int) -> str:
    done = subprocess.run(
        [*helpers.jobq_command(), "keys", "create", "--project", str(project), "--db", server.db],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stdout.strip()


# -- the seed ----------------------------------------------------------------------------


def test_seed_list(http: httpx.Client, shared_server: helpers.Server, project: int) -> None:
    done = finish_each(http, project, 4)
    push(http, project, {"spider": "s"})  # pending: not in the default list
    # as `curl -u APIKEY: .../jobq/53/list`
    response = httpx.get(f"{shared_server.url}/jobq/{project}/list",
                         auth=(shared_server.admin_key, ""))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-jsonlines"
    rows = lines(response)
    assert [r["key"] for r in rows] == done[::-1]
    assert all(isinstance(r["ts"], int) for r in rows)
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)


def test_seed_startts_endts(http: httpx.Client, project: int) -> None:
    done = finish_each(http, project, 5)
    ts = {r["key"]: r["ts"] for r in lines(http.get(f"/jobq/{project}/list"))}
    assert len(set(ts.values())) == 5
    response = http.get(f"/jobq/{project}/list",
                        params={"startts": ts[done[1]], "endts": ts[done[4]]})
    assert [(r["key"], r["ts"]) for r in lines(response)] == [
        (done[3], ts[done[3]]), (done[2], ts[done[2]]), (done[1], ts[done[1]])
    ]


def test_seed_stop(http: httpx.Client, project: int) -> None:
    done = finish_each(http, project, 3)
    cursor = done[-1]  # the newest job the consumer has processed
    newer = finish_each(http, project, 2)
    rows = lines(http.get(f"/jobq/{project}/list", params={"stop": cursor}))
    assert [r["key"] for r in rows] == newer[::-1]
    assert lines(http.get(f"/jobq/{project}/list", params={"stop": newer[-1]})) == []


def test_list_default_count_is_1000(http: httpx.Client, project: int) -> None:
    push(http, project, *({"spider": "s", "state": "finished"} for _ in range(1001)))
    assert len(lines(http.get(f"/jobq/{project}/list"))) == 1000
    assert len(lines(http.get(f"/jobq/{project}/list", params={"count": 1001}))) == 1001
    assert count(http, project) == 1001


def test_list_key_and_jobmeta(http: httpx.Client, project: int) -> None:
    a, b, _ = push(http, project, *({"spider": "s", "note": i} for i in range(3)))
    response = http.get(f"/jobq/{project}/list", params={
        "state": "pending", "key": [a["key"], b["key"]], "jobmeta": ["note", "units"]})
    rows = lines(response)
    assert [r["key"] for r in rows] == [b["key"], a["key"]]
    assert set(rows[0]) == {"key", "ts", "state", "elapsed", "note", "units"}
    assert (rows[0]["note"], rows[0]["units"]) == (1, 1)


def test_startjob_answers(http: httpx.Client, project: int) -> None:
    assert http.post(f"/jobq/{project}/startjob").status_code == 204
    push(http, project, {"spider": "s", "note": "n"})
    response = http.post(f"/jobq/{project}/startjob", content=b'{"worker": "w"}')
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert (job["key"], job["state"], job["note"], job["worker"]) == (
        f"{project}/1/1", "running", "n", "w")
    assert isinstance(job["auth"], str)
    empty = http.post(f"/jobq/{project}/startjob", content=b"{}")
    assert (empty.status_code, empty.content) == (204, b"")


def test_single_values_are_plain_json(http: httpx.Client, project: int) -> None:
    push(http, project, {"spider": "s"})
    for asked in ({}, {"format": "json"}):
        response = http.get(f"/jobq/{project}/count", params={"state": "pending", **asked})
        assert (response.headers["content-type"], response.content) == ("application/json", b"1")
        assert http.get(f"/jobs/{project}/1/1/priority", params=asked).content == b"2"
    jl = http.get(f"/jobq/{project}/count", params={"state": "pending", "format": "jl"})
    assert jl.content == b"1\n"


# -- formats -----------------------------------------------------------------------------


@pytest.fixture
def listed(http: httpx.Client, project: int) -> list[str]:
    """Three pending jobs with awkward values; their keys, newest first."""
    rows = push(http, project,
                {"spider": "s", "tags": ["a"], "note": 'say "hi", ok'},
                {"spider": "s", "note": "line\nbreak"},
                {"spider": "s", "note": "ü <&>"})
    return [r["key"] for r in rows][::-1]


def test_format_json_and_text(http: httpx.Client, project: int, listed: list[str]) -> None:
    url = f"/jobq/{project}/list?state=pending"
    jl = lines(http.get(url))
    as_json = http.get(url + "&format=json")
    assert as_json.headers["content-type"] == "application/json"
    assert [r["key"] for r in as_json.json()] == listed == [r["key"] for r in jl]
    text = http.get(url + "&format=text")
    assert text.headers["content-type"].startswith("text/plain")
    assert [orjson.loads(x)["key"] for x in text.text.splitlines()] == listed


def test_format_xml(http: httpx.Client, project: int, listed: list[str]) -> None:
    response = http.get(f"/jobq/{project}/list",
                        params={"state": "pending", "format": "xml", "jobmeta": "note"})
    assert response.headers["content-type"] == "application/xml"
    items = ET.fromstring(response.content).findall("item")
    keys = [v.text for item in items for v in item if v.get("name") == "key"]
    notes = [v.text for item in items for v in item if v.get("name") == "note"]
    assert keys == listed
    assert notes[0] == "ü <&>"


def test_format_csv_options(http: httpx.Client, project: int, listed: list[str]) -> None:
    url = f"/jobq/{project}/list"
    base = {"state": "pending", "format": "csv", "jobmeta": "note", "fields": "key,note,tags"}
    plain = http.get(url, params=base)
    assert plain.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(plain.text)))
    assert rows == [[listed[0], "ü <&>", ""], [listed[1], "line\nbreak", ""],
                    [listed[2], 'say "hi", ok', '["a"]']]
    headed = http.get(url, params={**base, "include_headers": "1", "sep": ";",
                                   "lineend": "\\r\\n"})
    assert headed.text.startswith("key;note;tags\r\n" + f"{listed[0]};ü <&>;\r\n")
    quoted = http.get(url, params={**base, "fields": "note", "quote": "'", "escape": "\\"})
    assert quoted.text.splitlines()[-1] == "'say \"hi\", ok'"
    escaped = http.get(url, params={**base, "fields": "note", "escape": "\\"})
    assert escaped.text.splitlines()[-1] == '"say \\"hi\\", ok"'


def test_accept_header_chooses_the_format(
    http: httpx.Client, project: int, listed: list[str]
) -> None:
    url = f"/jobq/{project}/list?state=pending&fields=key"
    expected = {
        "application/x-jsonlines": "application/x-jsonlines",
        "application/json": "application/json",
        "text/csv": "text/csv",
        "application/xml": "application/xml",
        "text/plain": "text/plain",
        "*/*": "application/x-jsonlines",
    }
    for accept, media in expected.items():
        response = http.get(url, headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == media, accept
    csv_body = http.get(url, headers={"Accept": "text/csv"}).text
    assert csv_body.split() == listed
    # `format` wins over Accept
    assert http.get(url + "&format=json", headers={"Accept": "text/csv"}).json()[0]["key"] \
        == listed[0]


def test_gzip(http: httpx.Client, project: int) -> None:
    push(http, project, *({"spider": "s", "pad": "x" * 50} for _ in range(100)))
    url = f"/jobq/{project}/list?state=pending&jobmeta=pad"
    zipped = http.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    keys = [r["key"] for r in lines(zipped)]  # httpx decompressed it
    assert len(keys) == 100
    with httpx.stream("GET", http.base_url.join(url), auth=http.auth,
                      headers={"Accept-Encoding": "gzip"}) as stream:
        body = b"".join(stream.iter_raw())
    assert len(body) < len(zipped.content) / 5
    unzipped = [orjson.loads(x)["key"] for x in gzip.decompress(body).splitlines()]
    assert unzipped == keys
    plain = http.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(lines(plain)) == 100


def test_saveas(http: httpx.Client, project: int) -> None:
    response = http.get(f"/jobq/{project}/list", params={"saveas": "jobs.jl"})
    assert response.headers["content-disposition"] == 'attachment; filename="jobs.jl"'
    response = http.get(f"/jobq/{project}/list", params={"saveas": "tâches.jl"})
    assert response.status_code == 200
    assert "filename*=UTF-8''t%C3%A2ches.jl" in response.headers["content-disposition"]
    response = http.get(f"/jobq/{project}/list", params={"saveas": 'a"/\r\nX-Evil: 1'})
    assert "x-evil" not in response.headers
    assert response.headers["content-disposition"] == 'attachment; filename="aX-Evil: 1"'


# -- credentials -------------------------------------------------------------------------


def test_no_or_bad_credentials_401(shared_server: helpers.Server, project: int) -> None:
    url = f"{shared_server.url}/jobq/{project}/list"
    attempts = [
        httpx.get(url),
        httpx.get(url, auth=("wrong", "")),
        httpx.get(url, params={"apikey": "wrong"}),
        httpx.get(url, headers={"Authorization": "Basic !!!"}),
        httpx.get(url, auth=(f"{project}/1/1", "not-a-token")),
        httpx.post(f"{shared_server.url}/jobq/{project}/push", content=b'{"spider": "s"}'),
    ]
    for response in attempts:
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
    assert httpx.get(url, params={"apikey": shared_server.admin_key}).status_code == 200


def test_project_key_is_403_elsewhere(shared_server: helpers.Server, project: int) -> None:
    key = project_key(shared_server, project)
    url = shared_server.url
    with httpx.Client(base_url=url, auth=(key, "")) as client:
        assert client.post(f"/jobq/{project}/push", content=b'{"spider": "s"}').status_code == 200
        assert client.get(f"/jobq/{project}/list?state=pending").status_code == 200
        other = project + 100_000
        for response in (
            client.get(f"/jobq/{other}/list"),
            client.post(f"/jobq/{other}/push", content=b'{"spider": "s"}'),
            client.get(f"/jobs/{other}/1/1"),
            client.get(f"/projects/{other}/settings"),
            client.post("/botgroups/x/max_running", content=b"1"),
        ):
            assert response.status_code == 403
            assert response.json()["error"] == "Forbidden"
        meta = client.get(f"/jobs/{project}/1/1").json()
        assert meta["scheduled_by"] == f"project-{project}"
        seen = client.get("/projects/jobsummaries").json()
        assert [s["project"] for s in seen] == [project]


def test_system_ts_needs_no_credentials(shared_server: helpers.Server) -> None:
    response = httpx.get(f"{shared_server.url}/system/ts")
    assert response.status_code == 200
    assert abs(response.json() - time.time() * 1000) < 5000


# -- job metadata on the wire --------------------------------------------------------------


def test_job_field_get_post_delete(http: httpx.Client, project: int) -> None:
    (row,) = push(http, project, {"spider": "s", "note": {"a": 1}})
    job = f"/jobs/{row['key']}"
    field = http.get(job + "/note")
    assert (field.status_code, field.headers["content-type"], field.json()) == (
        200, "application/json", {"a": 1})
    assert http.get(job + "/absent").status_code == 404
    posted = http.post(job, content=b'{"x": 1}\n{"y": 2}')
    assert (posted.status_code, posted.content) == (200, b"")
    assert http.post(job + "/z", content=b"[3]").status_code == 200
    deleted = http.delete(job + "/x")
    assert (deleted.status_code, deleted.content) == (200, b"")
    meta = lines(http.get(job))[0]
    assert (meta.get("x"), meta["y"], meta["z"]) == (None, 2, [3])
    assert http.delete(job).status_code == 200
    assert http.get(job).status_code == 404
    assert count(http, project, "pending") == 0


# -- errors ------------------------------------------------------------------------------


def test_malformed_json_line_writes_nothing(http: httpx.Client, project: int) -> None:
    response = http.post(f"/jobq/{project}/push",
                         content=b'{"spider": "s"}\n{"spider": "s"\n{"spider": "s"}')
    assert response.status_code == 400
    assert "line 2" in response.text
    assert count(http, project, "pending") == 0
    assert http.get(f"/ids/{project}/spider/s").json() is None


@pytest.mark.parametrize(("line", "words"), [
    ({"spider": "s", "priority": "high"}, "priority"),
    ({"spider": "s", "priority": 5}, "priority"),
    ({"spider": "s", "tags": "a"}, "tags"),
    ({"spider": "s", "tags": [1]}, "tags"),
    ({"spider": "s", "units": 0}, "units"),
    ({"priority": 1}, "spider"),
    ({"spider": 7}, "spider"),
    ({"spider": ""}, "empty string"),
    ({"spider": "s", "state": "done"}, "state"),
    (["not", "an", "object"], "object"),
])
def test_push_wrong_types_400(
    http: httpx.Client, project: int, line: Any, words: str
) -> None:
    body = b'{"spider": "fine"}\n' + orjson.dumps(line)
    response = http.post(f"/jobq/{project}/push", content=body)
    assert response.status_code == 400
    assert "line 2" in response.text and words in response.text
    assert count(http, project, "pending", "running", "finished") == 0


def test_bad_parameters_400(http: httpx.Client, project: int) -> None:
    cases = {
        "/list?state=done": "state",
        "/list?count=abc": "count",
        "/list?startts=-1": "startts",
        "/list?endts=x": "endts",
        "/list?start=-1": "start",
        "/list?stop=53/x": "stop",
        f"/list?stop={project + 1}/1/1": "stop",
        f"/list?stop={project}/1/1": "stop",  # never finished
        "/list?bogus=1": "bogus",
        "/list?state=deleted": "deleted",
        '/list?filter=["state","=",["deleted"]]': "deleted",
        "/list?filter=nope": "filter",
        '/list?filter=["foo","=",["a"]]': "filter",
        "/list?format=yaml": "format",
        "/list?format=csv": "fields",
        "/list?format=csv&fields=key&sep=ab": "sep",
        "/list?format=csv&fields=key&lineend=%5Cx": "lineend",
        f"/list?count={10**9}": "count",
        "/count?stop=bad": "stop",
        "/summary?count=x": "count",
        "/summary/done": "done",
        "/jobsummary?key=bad": "key",
    }
    for path, words in cases.items():
        response = http.get(f"/jobq/{project}{path}")
        assert response.status_code == 400, path
        assert words in response.text, (path, response.text)
    assert http.get("/jobq/abc/list").status_code == 400
    assert http.get(f"/jobs/{project}/x/1").status_code == 400
    assert http.post(f"/jobq/{project}/x/1/cancel").status_code == 400
    assert http.get(f"/spiders/{project}/lastjobsummary?startafter=x").status_code == 400
    assert http.get(f"/spiders/{project}/lastjobsummary?count=-1").status_code == 400


def test_huge_numbers_are_clamped(http: httpx.Client, project: int) -> None:
    done = finish_each(http, project, 1)
    huge = "9" * 30
    assert lines(http.get(f"/jobq/{project}/list?endts={huge}"))[0]["key"] == done[0]
    assert lines(http.get(f"/jobq/{project}/list?startts={huge}")) == []
    assert lines(http.get(f"/jobq/{project}/list?start={huge}")) == []
    assert http.get(f"/jobq/{project}/count?startts={huge}").json() == 0
    response = http.post(f"/jobq/{project}/cancel?count={huge}")
    assert response.json() == {"count": 0}


def test_update_errors_apply_nothing(http: httpx.Client, project: int) -> None:
    a, b = push(http, project, {"spider": "s"}, {"spider": "s", "state": "finished"})
    url = f"/jobq/{project}/update"
    for body, status in [
        (b'{"key": "%s", "state": "done"}' % a["key"].encode(), 400),
        (b'{"state": "finished"}', 400),
        (b'{"key": "1/2/3/4", "state": "finished"}', 400),
        (b'{"key": "%d/1/1", "state": "finished"}' % (project + 1), 400),
        (b'{"key": "%s", "tags": "x"}' % a["key"].encode(), 400),
        # a legal first line, then a transition the rules refuse: 409, and no change
        (b'{"key": "%s", "state": "running"}\n{"key": "%s", "state": "running"}'
         % (a["key"].encode(), b["key"].encode()), 409),
    ]:
        response = http.post(url, content=body)
        assert response.status_code == status, body
    assert lines(http.get(f"/jobs/{a['key']}"))[0]["state"] == "pending"


def test_line_over_1mib_413(http: httpx.Client, project: int) -> None:
    limit = 1024 * 1024
    big = orjson.dumps({"spider": "s", "pad": "x" * limit})
    response = http.post(f"/jobq/{project}/push", content=b'{"spider": "s"}\n' + big)
    assert response.status_code == 413
    assert "line 2" in response.text
    assert count(http, project, "pending") == 0
    fits = orjson.dumps({"spider": "s", "pad": "x" * (limit - 100)})
    assert http.post(f"/jobq/{project}/push", content=fits).status_code == 200
    too_big_field = b'"' + b"x" * limit + b'"'
    assert http.post(f"/jobs/{project}/1/1/pad", content=too_big_field).status_code == 413


def test_unknown_resource_404(http: httpx.Client, project: int) -> None:
    for path in (f"/jobq/{project}/nothing", f"/items/{project}/1/1", f"/logs/{project}/1/1",
                 f"/collections/{project}/s/x", f"/jobq/{project}/summary/deleted",
                 f"/jobs/{project}/1/1", "/nothing"):
        response = http.get(path)
        assert response.status_code == 404, path


def test_unique_duplicate_answers_per_line(http: httpx.Client, project: int) -> None:
    push(http, project, {"spider": "s", "unique": "h1"})
    rows = push(http, project,
                {"spider": "s", "unique": "h2"},
                {"spider": "s", "unique": "h1", "note": 1},
                {"spider": "s", "unique": "h2"})
    assert "key" in rows[0]
    assert rows[1] == {"error": "Active job exists with key h1",
                       "request": {"spider": "s", "unique": "h1", "note": 1}}
    assert rows[2]["error"] == "Active job exists with key h2"
    assert count(http, project, "pending") == 2


def test_cancel_answers(http: httpx.Client, project: int) -> None:
    a, b, c = push(http, project, {"spider": "s"}, {"spider": "s", "state": "running"},
                   {"spider": "s", "state": "finished"})
    body = orjson.dumps([{"key": r["key"]} for r in (a, b, c)] + [{"key": f"{project}/5/5"}])
    response = http.post(f"/jobq/{project}/cancel", content=body)
    assert (response.headers["content-type"], response.json()) == ("application/json",
                                                                   {"count": 2})
    one = http.post(f"/jobq/{project}/{b['key'].split('/', 1)[1]}/cancel")
    assert one.json() == {"count": 1}  # still running: asked again
    assert http.post(f"/jobq/{project}/cancel", content=b"[1]").status_code == 400


def test_never_a_500(http: httpx.Client, project: int) -> None:
    (row,) = push(http, project, {"spider": "s"})
    job = f"/jobs/{row['key']}"
    requests: list[tuple[str, str, bytes]] = [
        ("POST", f"/jobq/{project}/push", b"\xff\xfe"),
        ("POST", f"/jobq/{project}/push", b'{"spider": "s", "nul": "a\\u0000b"}'),
        ("POST", f"/jobq/{project}/push", b'{"spider": "s", "big": 123456789012345678901234}'),
        ("POST", f"/jobq/{project}/push", b'{"spider": "s", "unique": {"a": [1]}}'),
        ("POST", f"/jobq/{project}/push", b'{"spider": "s", "priority": 1e400}'),
        ("POST", f"/jobq/{project}/push", b"null"),
        ("POST", f"/jobq/{project}/startjob", b"[1]"),
        ("POST", f"/jobq/{project}/startjob", b'{"botgroup": 5}'),
        ("POST", f"/jobq/{project}/startjob", b'{"a": 1}\n{"b": 2}'),
        ("POST", f"/jobq/{project}/update", b'{"key": 5}'),
        ("POST", f"/jobq/{project}/cancel", b'{"key": "x"}'),
        ("POST", f"/jobq/{project}/cancel?count=1", b'[{"key": "x"}]'),
        ("POST", job, b'"just a string"'),
        ("POST", job + "/f", b""),
        ("POST", f"/projects/{project}/settings", b'{"botgroups": "x"}'),
        ("POST", f"/projects/{project}/settings", b"[1]"),
        ("POST", "/botgroups/g/max_running", b'"x"'),
        ("POST", f"/botgroups/g{project}/max_running", b"13970747403853350912"),
        ("GET", f"/jobq/{project}/list?saveas=%E2%9C%93%0D%0A", b""),
        ("GET", f"/jobq/{project}/list?format=csv&fields=key&lineend=%5CN", b""),
        ("GET", f"/jobq/{project}/list?state=pending&jobmeta=nul&format=xml", b""),
        ("GET", f"/jobq/{project}/list?spider=s&spider=s&has_tag=", b""),
        ("GET", f"/jobq/{project}/count?format=csv", b""),
        ("GET", f"/ids/{project}/spider/{'x' * 300}", b""),
        ("GET", f"/jobq/{project}/push", b""),
        ("DELETE", f"/jobq/{project}/list", b""),
        ("GET", f"/jobq/{project}/jobsummary?key={project}/999999999999999999/1", b""),
        ("GET", f"/jobq/{project}/list?stop={project}/999999999999999999/1", b""),
    ]
    for method, path, body in requests:
        response = http.request(method, path, content=body)
        assert response.status_code < 500, (method, path, body, response.text)


def test_nul_characters_in_names_are_refused_alike(http: httpx.Client, project: int) -> None:
    for body in (b'{"spider":"a\\u0000b"}', b'{"spider":"a","tags":["x\\u0000"]}',
                 b'{"spider":"a","unique":"u\\u0000"}'):
        response = http.post(f"/jobq/{project}/push", content=body)
        assert response.status_code == 400 and "NUL" in response.text, response.text
    listed = http.get(f"/jobq/{project}/list", params={"has_tag": "x\x00y"})
    assert listed.status_code == 400 and "has_tag" in listed.text
    settings = http.post(f"/projects/{project}/settings", content=b'{"botgroups":["g\\u0000"]}')
    assert settings.status_code == 400
    assert http.get(f"/jobq/{project}/count", params={"state": "pending"}).json() == 0
