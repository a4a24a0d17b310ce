"""Operating a real server: metrics, health, request ids, logs, limits, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers import Server, free_port, jobq_command, wait_until

P = 53


def start(db_url: str, tmp_path: Path, *args: str) -> Server:
    return Server(db=db_url, log=tmp_path / "server.log", extra_args=list(args)).start()


def test_metrics_count_requests_jobs_and_queue_depth(server: Server) -> None:
    with server.client() as client:
        client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}\n{"spider":"a"}')
        key = client.post(f"/jobq/{P}/startjob").json()["key"]
        client.post(f"/jobq/{P}/update", content=orjson.dumps({"key": key, "state": "finished"}))
        client.get(f"/jobq/{P}/list")
        text = httpx.get(server.url + "/metrics").text
    list_route = 'method="GET",route="/jobq/{pid}/list"'
    assert f"jobq_http_requests_total{{{list_route},status=\"200\"}} 1.0" in text
    assert "jobq_jobs_pushed_total 2.0" in text
    assert "jobq_jobs_claimed_total 1.0" in text
    assert "jobq_jobs_finished_total 1.0" in text
    assert 'jobq_queue_jobs{project="53",state="pending"} 1.0' in text
    assert 'jobq_queue_jobs{project="53",state="finished"} 1.0' in text
    assert 'jobq_db_seconds_count{operation="push"} 1.0' in text
    push_route = 'method="POST",route="/jobq/{pid}/push"'
    assert f'jobq_http_request_seconds_bucket{{le="0.5",{push_route}}}' in text


def _metric(text: str, name: str) -> float:
    """The value of one sample (0 when it is absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_finished_total_counts_cancelled_pending_jobs(server: Server) -> None:
    with server.client() as client:
        body = b"\n".join(orjson.dumps({"spider": "a"}) for _ in range(5))
        keys = [orjson.loads(line)["key"]
                for line in client.post(f"/jobq/{P}/push", content=body).content.split()]
        running = client.post(f"/jobq/{P}/startjob").json()["key"]
        assert running == keys[0]
        # one pending and one running job by key: only the pending one finishes now
        by_key = orjson.dumps([{"key": keys[1]}, {"key": running}])
        assert client.post(f"/jobq/{P}/cancel", content=by_key).json() == {"count": 2}
        # every other pending job (admin, no keys)
        assert client.post(f"/jobq/{P}/cancel", params={"count": 10}).json() == {"count": 3}
        assert client.get(f"/jobq/{P}/count", params={"state": "finished"}).json() == 4
        text = client.get("/metrics").text
    assert _metric(text, "jobq_jobs_finished_total") == 4.0


def test_queue_depths_of_many_projects_take_one_query(server: Server) -> None:
    projects = range(1, 301)
    with server.client() as client:
        for project in projects:
            assert client.post(f"/jobq/{project}/push",
                               content=b'{"spider":"a"}').status_code == 200
        first = client.get("/metrics").text
        second = client.get("/metrics").text
    depths = 'jobq_db_seconds_count{operation="queue_depths"}'
    per_project = 'jobq_db_seconds_count{operation="state_counts"}'
    assert _metric(second, depths) - _metric(first, depths) == 1.0
    assert _metric(second, per_project) == _metric(first, per_project) == 0.0
    for project in (1, 150, 300):
        assert f'jobq_queue_jobs{{project="{project}",state="pending"}} 1.0' in second


def test_metrics_key_guards_metrics(db_url: str, tmp_path: Path) -> None:
    server = start(db_url, tmp_path, "--metrics-key", "scrape-me")
    try:
        url = server.url + "/metrics"
        statuses = {
            "none": httpx.get(url).status_code,
            "wrong": httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code,
            "admin key": httpx.get(url, auth=(server.admin_key, "")).status_code,
            "bearer": httpx.get(url, headers={"Authorization": "Bearer scrape-me"}).status_code,
            "basic": httpx.get(url, auth=("scrape-me", "")).status_code,
        }
        assert httpx.get(server.url + "/healthz").status_code == 200  # still open
    finally:
        server.stop()
    assert statuses == {"none": 401, "wrong": 401, "admin key": 401, "bearer": 200,
                        "basic": 200}


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "reachable"


def test_request_id_is_echoed_or_made(server: Server) -> None:
    with server.client() as client:
        given = client.get("/system/ts", headers={"X-Request-ID": "trace-42"})
        made = client.get("/system/ts")
        hostile = client.get("/system/ts", headers={"X-Request-ID": "a b\tc" * 30})
    assert given.headers["x-request-id"] == "trace-42"
    assert len(made.headers["x-request-id"]) == 16
    assert hostile.headers["x-request-id"] != "a b\tc" * 30


def test_json_logs_carry_the_request_id(db_url: str, tmp_path: Path) -> None:
    server = start(db_url, tmp_path, "--log-format", "json", "--log-level", "debug")
    try:
        with server.client() as client:
            client.get(f"/jobq/{P}/list", headers={"X-Request-ID": "find-me"})
    finally:
        server.stop()
    entries = [orjson.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
               if line.startswith("{")]
    mine = [e for e in entries if e.get("request_id") == "find-me"]
    assert mine and mine[0]["status"] == 200 and mine[0]["action"] == "request"
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_rate_limit_answers_429_with_retry_after(db_url: str, tmp_path: Path) -> None:
    server = start(db_url, tmp_path, "--rate-limit", "1", "--rate-burst", "3")
    try:
        with server.client() as client:
            codes = [client.get(f"/jobq/{P}/count").status_code for _ in range(5)]
            refused = client.get(f"/jobq/{P}/count")
            other_key = httpx.get(server.url + f"/jobq/{P}/count", params={"apikey": "nope"})
    finally:
        server.stop()
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert other_key.status_code == 401  # another key has its own bucket


def test_count_over_the_cap_is_a_clear_400(server: Server) -> None:
    with server.client() as client:
        response = client.get(f"/jobq/{P}/list", params={"count": 100_001})
    assert response.status_code == 400 and "count" in response.text


def test_slow_request_body_times_out_with_408(db_url: str, tmp_path: Path) -> None:
    server = start(db_url, tmp_path, "--body-timeout", "0.5")
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                f"POST /jobq/{P}/push?apikey={server.admin_key} HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: 100\r\n\r\n{\"spider\":".encode()
            )
            sock.settimeout(10)
            answer = sock.recv(4096).decode()
        with server.client() as client:
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 0
    finally:
        server.stop()
    assert answer.startswith("HTTP/1.1 408")


def test_sigterm_finishes_the_request_in_flight_then_exits(db_url: str, tmp_path: Path) -> None:
    server = start(db_url, tmp_path)
    body = b'{"spider":"s1"}\n' * 50
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"POST /jobq/{P}/push?apikey={server.admin_key} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10]
        )
        time.sleep(0.3)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert server.process.poll() is None, "exited with a request in flight"
        sock.sendall(body[10:])
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b'"key"') == 50
    assert server.process.wait(15) == 0
    server.start()
    try:
        with server.client() as client:
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 50
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_full_disk_answers_503_then_recovers(db_url: str, tmp_path: Path) -> None:
    import resource

    server = start(db_url, tmp_path)
    assert server.process is not None
    pid = server.process.pid
    try:
        with server.client() as client:
            assert client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}').status_code == 200
            size = (tmp_path / "jobq.sqlite3").stat().st_size + (
                tmp_path / "jobq.sqlite3-wal").stat().st_size
            # no file of the server may grow past its current size: a full disk
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
            big = b"\n".join(orjson.dumps({"spider": "a", "pad": "x" * 2000}) for _ in range(200))
            full = client.post(f"/jobq/{P}/push", content=big)
            assert full.status_code == 503, full.text
            assert "database" in full.text
            assert client.get("/readyz").status_code == 200  # reads still work
            resource.prlimit(pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            again = client.post(f"/jobq/{P}/push", content=big)
            assert again.status_code == 200, again.text
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 201
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_backup_of_a_live_sqlite_database_serves_the_same_jobs(
    server: Server, tmp_path: Path
) -> None:
    import subprocess

    from tests.helpers import jobq_command

    with server.client() as client:
        client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}\n' * 30)
    copy = tmp_path / "backup.sqlite3"
    subprocess.run([*jobq_command(), "backup", "--db", server.db, str(copy)], check=True,
                   capture_output=True)
    restored = Server(db=f"sqlite:///{copy}", log=tmp_path / "restored.log").start()
    try:
        with restored.client() as client:
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 30
    finally:
        restored.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("http_server", ["granian", "uvicorn"])
def test_sigterm_while_the_app_starts_stops_it_once_started(http_server: str, pg_url: str,
                                                            tmp_path: Path) -> None:
    """A stop asked for during start-up is not lost (granian 2.8 forgot it and never
    exited): here the start-up waits on the API keys' table, which the test locks."""
    import psycopg

    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    subprocess.run([*jobq_command(), "migrate", "--db", pg_url], env=env,
                   check=True, capture_output=True, timeout=60)
    lock = psycopg.connect(pg_url)
    # the first start reads the API keys to make an admin key: it waits for the lock
    lock.execute("LOCK TABLE jobq.api_keys IN ACCESS EXCLUSIVE MODE")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*jobq_command(), "serve", "--port", str(free_port()), "--db", pg_url,
             "--log-level", "info", "--http-server", http_server],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    db = pg_url.rpartition("/")[2]

    def waiting_for_the_lock() -> bool:
        with psycopg.connect(pg_url) as watcher:
            row = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                  " AND wait_event_type = 'Lock'", (db,)).fetchone()
        return process.poll() is None and row is not None and row[0] > 0

    try:
        # the app's start-up waits: the server's signal handlers are in place
        wait_until("the server waits for the lock", waiting_for_the_lock)
        process.send_signal(signal.SIGTERM)
        wait_until("the server holds the stop", lambda: process.poll() is None
                   and b"stopping once the app has started" in log.read_bytes())
        lock.rollback()
        assert process.wait(15) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
        lock.close()
    assert b"created the admin key" in log.read_bytes()
    assert b"Traceback" not in log.read_bytes()
