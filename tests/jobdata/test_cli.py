"""`jobq items`, `jobq logs`, `jobq requests` as subprocesses against a real server."""

from __future__ import annotations

import gzip
import json
import select
import subprocess
import time

import httpx

from tests import helpers
from tests.jobdata.conftest import finish, running_job


def jobq(server: helpers.Server, *args: str, check: bool = True
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*helpers.jobq_command(), *args, "--url", server.url, "--apikey",
                           server.admin_key], capture_output=True, check=check, timeout=120)


def write(http: httpx.Client, kind: str, key: str, records: list[dict[str, object]]) -> None:
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    answer = http.post(f"/{kind}/{key}", content=body, headers={"content-encoding": "gzip"})
    assert answer.status_code == 200, answer.text


def test_items_as_json_lines_csv_and_fields(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, _ = running_job(http, project)
    records = [{"url": f"u{i}", "price": i, "extra": [i]} for i in range(12_000)]
    write(http, "items", key, records)
    done = jobq(data_server, "items", key)
    assert [json.loads(line) for line in done.stdout.splitlines()] == records
    assert f"items of {key}".encode() in done.stderr  # the progress bar, on stderr
    table = jobq(data_server, "items", key, "--format", "csv", "--fields", "url,price")
    lines = table.stdout.decode().splitlines()
    assert lines[:3] == ["url,price", "u0,0", "u1,1"] and len(lines) == 12_001
    picked = jobq(data_server, "items", key, "--fields", "price")
    assert json.loads(picked.stdout.splitlines()[5]) == {"price": 5}
    refused = jobq(data_server, "items", f"{project}/1/999", check=False)
    assert refused.returncode == 1 and b"404" in refused.stderr
    assert jobq(data_server, "items", "nonsense", check=False).returncode == 2


def test_requests_and_logs_with_level(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, _ = running_job(http, project)
    write(http, "requests", key, [{"url": "https://a", "status": 200}])
    write(http, "logs", key, [{"message": "fine", "level": 20, "time": 1_700_000_000_000},
                              {"message": "broken", "level": 40, "time": 1_700_000_000_001}])
    got = jobq(data_server, "requests", key).stdout
    assert [json.loads(line) for line in got.splitlines()] == [{"url": "https://a",
                                                                 "status": 200}]
    text = jobq(data_server, "logs", key).stdout.decode().splitlines()
    assert text == ["2023-11-14 22:13:20 INFO fine", "2023-11-14 22:13:20 ERROR broken"]
    errors_only = jobq(data_server, "logs", key, "--level", "ERROR", "--json").stdout
    assert [json.loads(x)["message"] for x in errors_only.splitlines()] == ["broken"]


def test_logs_follow_ends_when_the_job_finishes(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, _ = running_job(http, project)
    write(http, "logs", key, [{"message": "first", "level": 20, "time": 1}])
    before = _log_reads(http)
    follower = subprocess.Popen(
        [*helpers.jobq_command(), "logs", key, "--follow", "--json", "--url", data_server.url,
         "--apikey", data_server.admin_key], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 30)
        assert ready, "the first line did not come"
        first = follower.stdout.readline()
        assert json.loads(first)["message"] == "first"
        # it has printed what there is; it must ask again rather than end
        _wait_for_log_reads(http, before + 2)
        assert follower.poll() is None, "--follow must wait while the job runs"
        write(http, "logs", key, [{"message": "second", "level": 20, "time": 2}])
        finish(http, project, key)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.communicate()  # reaps it and closes its pipes
    assert follower.returncode == 0, err
    assert [json.loads(x)["message"] for x in out.splitlines()] == ["second"]


_LOG_READS = 'jobq_http_requests_total{method="GET",route="/logs/{pid}/{sid}/{jobno}",status="200"}'


def _log_reads(http: httpx.Client) -> int:
    """How many log reads the server has answered (its /metrics)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(_LOG_READS + " "):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _wait_for_log_reads(http: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + 30
    while _log_reads(http) < count:
        assert time.monotonic() < deadline, f"fewer than {count} log reads in 30 s"
        time.sleep(0.05)
