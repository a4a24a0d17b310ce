"""How a real server answers when things go wrong around a request: a client that goes
away mid-body, a database failure that is not an outage, a flood of made-up credentials.
Every server here is a `jobq serve` process; what it logs is read from its log file."""

from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from tests.helpers import Server

P = 61


def _start(db_url: str, tmp_path: Path, *args: str) -> Server:
    return Server(db=db_url, log=tmp_path / "server.log",
                  extra_args=["--log-format", "json", *args]).start()


def _log(tmp_path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
            if line.startswith("{")]


def _metric(server: Server, line_start: str) -> float:
    """The value of the one /metrics sample whose line starts so (0 when absent)."""
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_a_client_gone_mid_body_is_no_error(db_url: str, tmp_path: Path) -> None:
    server = _start(db_url, tmp_path, "--log-level", "info")
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(
                    f"POST /jobq/{P}/push?apikey={server.admin_key} HTTP/1.1\r\nHost: x\r\n"
                    "Content-Length: 1000\r\n\r\n{\"spider\":".encode()
                )
                time.sleep(0.2)  # the server is now waiting for the rest of the body
        time.sleep(0.5)
        push = 'jobq_http_requests_total{method="POST",route="/jobq/{pid}/push",status='
        assert _metric(server, push + '"500"}') == 0
        assert _metric(server, push + '"499"}') == 3
        with server.client() as client:  # and nothing was written
            assert client.get(f"/jobq/{P}/count", params={"state": "pending"}).json() == 0
    finally:
        server.stop()
    entries = _log(tmp_path)
    assert not [e for e in entries if e["level"] in ("error", "critical")], entries
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _rename_jobs_table(db_url: str, old: str, new: str) -> None:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    else:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE jobq.{old} RENAME TO {new}")


def test_a_database_failure_answers_500_without_its_internals(
    db_url: str, tmp_path: Path
) -> None:
    """Not an outage (503 means only that): a table gone from under the server. The answer
    is short, carries the request id, and the database's own words are in the log only."""
    server = _start(db_url, tmp_path)
    rid = f"broken-{uuid.uuid4().hex[:8]}"
    try:
        with server.client() as client:
            assert client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}').status_code == 200
            _rename_jobs_table(db_url, "jobs", "jobs_elsewhere")
            broken = client.get(f"/jobq/{P}/list", params={"state": "pending"},
                                headers={"X-Request-ID": rid})
            _rename_jobs_table(db_url, "jobs_elsewhere", "jobs")
            again = client.get(f"/jobq/{P}/list", params={"state": "pending"})
    finally:
        server.stop()
    assert broken.status_code == 500, broken.text
    assert broken.headers["x-request-id"] == rid
    assert broken.text == f"internal server error (request {rid})\n"
    assert again.status_code == 200 and again.text.count('"key"') == 1
    mine = [e for e in _log(tmp_path) if e.get("request_id") == rid]
    logged = " ".join(str(e.get("message", "")) + str(e.get("exception", "")) for e in mine)
    assert "jobs" in logged, mine  # the operator sees what the database said
    assert any(e["level"] == "error" for e in mine), mine


def test_unknown_credentials_share_one_bucket_per_address(db_url: str, tmp_path: Path) -> None:
    """Made-up key names get no bucket (nor a database lookup) each: once the address has
    spent its burst on them they are refused with 429, while a known key goes on."""
    server = _start(db_url, tmp_path, "--rate-limit", "0.5", "--rate-burst", "3")
    try:
        with server.client() as client:
            assert client.get(f"/jobq/{P}/count").status_code == 200  # the key is known now
            codes = [httpx.get(server.url + f"/jobq/{P}/count", timeout=10,
                               params={"apikey": f"made-up-{n}"}).status_code
                     for n in range(6)]
            no_credentials = httpx.get(server.url + f"/jobq/{P}/count", timeout=10)
            known = client.get(f"/jobq/{P}/count")
    finally:
        server.stop()
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429, 429], codes
    assert no_credentials.status_code == 429
    assert int(no_credentials.headers["retry-after"]) >= 1
    assert known.status_code == 200, known.text


def test_each_principal_has_its_own_bucket_whatever_name_it_is_sent_under(
    db_url: str, tmp_path: Path
) -> None:
    """The admin key sent as Basic and as ?apikey= is one caller with one bucket."""
    server = _start(db_url, tmp_path, "--rate-limit", "0.5", "--rate-burst", "4")
    try:
        with server.client() as client:
            basic = [client.get(f"/jobq/{P}/count").status_code for _ in range(2)]
        query = [httpx.get(server.url + f"/jobq/{P}/count", timeout=10,
                           params={"apikey": server.admin_key}).status_code for _ in range(3)]
    finally:
        server.stop()
    assert basic == [200, 200] and query == [200, 200, 429], (basic, query)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_unrouted_requests_answer_404_or_405_with_the_request_id(
    db_url: str, tmp_path: Path
) -> None:
    """A request no route takes is answered by the same layer: with its id too."""
    server = _start(db_url, tmp_path)
    try:
        missing = httpx.get(server.url + "/no/such/route", headers={"X-Request-ID": "r-404"})
        wrong_method = httpx.put(server.url + f"/jobq/{P}/push", headers={"X-Request-ID": "r"})
    finally:
        server.stop()
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "r-404"
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("http_server", ["granian", "uvicorn"])
def test_each_http_server_serves_and_stops_cleanly(
    db_url: str, tmp_path: Path, http_server: str
) -> None:
    server = _start(db_url, tmp_path, "--http-server", http_server)
    try:
        with server.client() as client:
            pushed = client.post(f"/jobq/{P}/push", content=b'{"spider":"a"}\n{"spider":"b"}')
            assert pushed.status_code == 200 and pushed.text.count('"key"') == 2
            head = client.head("/healthz")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(b'{"status":"ok"}'))
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0


@pytest.mark.parametrize("http_server", ["granian", "uvicorn"])
def test_a_server_that_cannot_open_its_database_exits_non_zero(
    tmp_path: Path, http_server: str
) -> None:
    import subprocess

    from tests.helpers import jobq_command

    (tmp_path / "a-file").write_bytes(b"")  # no database can be made under a file
    done = subprocess.run(
        [*jobq_command(), "serve", "--db", f"sqlite:///{tmp_path}/a-file/jobq.sqlite3",
         "--port", "0", "--http-server", http_server],
        capture_output=True, text=True, timeout=60,
    )
    # refused before serving, as any database jobq cannot use: one line, exit status 2
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
