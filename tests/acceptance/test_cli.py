"""The `jobq` terminal tools as subprocesses against a real server: the HTTP tools
(push, list, summary, count, start, finish, delete, cancel) and `jobq keys`."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx
import orjson

from tests import helpers


def run(server: helpers.Server, *args: str, apikey: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["JOBQ_URL"] = server.url
    env["JOBQ_APIKEY"] = apikey or server.admin_key
    done = subprocess.run([*helpers.jobq_command(), *args], env=env, capture_output=True,
                          text=True, timeout=60)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def json_lines(text: str) -> list[Any]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_push_then_list_summary_count(shared_server: helpers.Server, http: httpx.Client,
                                      project: int) -> None:
    p = str(project)
    first = json_lines(run(shared_server, "push", p, "alpha", "--json").stdout)
    assert first == [{"key": f"{project}/1/1", "auth": None}]
    table = run(shared_server, "push", p, "alpha", "--priority", "4", "--tag", "t1",
                "--tag", "t2", "--meta", "note=hello").stdout
    assert table.split() == ["KEY", "ERROR", f"{project}/1/2"]
    meta = http.get(f"/jobs/{project}/1/2").json()
    assert (meta["priority"], meta["tags"], meta["note"]) == (4, ["t1", "t2"], "hello")

    rows = json_lines(run(shared_server, "list", p, "--state", "pending", "--json").stdout)
    assert [r["key"] for r in rows] == [f"{project}/1/2", f"{project}/1/1"]
    table = run(shared_server, "list", p, "--state", "pending").stdout.splitlines()
    assert table[0].split() == ["KEY", "STATE", "SPIDER", "TS", "TAGS"]
    assert table[1].split()[:3] == [f"{project}/1/2", "pending", "alpha"]
    assert table[1].split()[-1] == "t1,t2"
    assert run(shared_server, "list", p).stdout.splitlines()[1:] == []  # none finished

    summary = json_lines(run(shared_server, "summary", p, "--json").stdout)
    assert [(q["name"], q["count"]) for q in summary] == [
        ("pending", 2), ("running", 0), ("finished", 0)]
    table = run(shared_server, "summary", p).stdout.split()
    assert table == ["NAME", "COUNT", "pending", "2", "running", "0", "finished", "0"]
    assert run(shared_server, "count", p, "--state", "pending").stdout.strip() == "2"
    assert run(shared_server, "count", p, "--json").stdout.strip() == "0"


def test_start_finish_delete(shared_server: helpers.Server, http: httpx.Client,
                             project: int) -> None:
    p = str(project)
    run(shared_server, "push", p, "s")
    run(shared_server, "push", p, "s", "--priority", "3")
    started = json_lines(run(shared_server, "start", p, "--worker", "w1", "--json").stdout)
    assert [(r["key"], r["state"], r["worker"]) for r in started] == [
        (f"{project}/1/2", "running", "w1")]
    table = run(shared_server, "start", p).stdout.splitlines()
    assert table[1].split()[:2] == [f"{project}/1/1", "running"]
    empty = run(shared_server, "start", p, check=False)
    assert (empty.returncode, empty.stderr.strip()) == (1, "no pending job")

    done = run(shared_server, "finish", f"{project}/1/1", f"{project}/1/2").stdout
    assert done.split() == ["KEY", "PREVSTATE", f"{project}/1/1", "running",
                            f"{project}/1/2", "running"]
    rows = json_lines(run(shared_server, "list", p, "--stop", f"{project}/1/1", "--json").stdout)
    assert [r["key"] for r in rows] == [f"{project}/1/2"]
    rows = json_lines(run(shared_server, "list", p, "--count", "1", "--spider", "s",
                          "--json").stdout)
    assert [r["key"] for r in rows] == [f"{project}/1/2"]
    deleted = json_lines(run(shared_server, "delete", f"{project}/1/1", "--json").stdout)
    assert deleted == [{"key": f"{project}/1/1", "prevstate": "finished"}]
    assert http.get(f"/jobs/{project}/1/1/state").json() == "deleted"
    assert run(shared_server, "count", p).stdout.strip() == "1"


def test_cancel(shared_server: helpers.Server, http: httpx.Client, project: int) -> None:
    p = str(project)
    run(shared_server, "push", p, "s")
    run(shared_server, "push", p, "s")
    out = run(shared_server, "cancel", f"{project}/1/1", f"{project}/1/2", f"{project}/1/9")
    assert out.stdout.strip() == "cancelled 2"
    assert http.get(f"/jobs/{project}/1/1/close_reason").json() == "cancelled"
    again = run(shared_server, "cancel", f"{project}/1/1", "--json")
    assert json_lines(again.stdout) == [{"count": 0}]


def test_errors_exit_nonzero(shared_server: helpers.Server, project: int) -> None:
    refused = run(shared_server, "count", str(project), apikey="wrong", check=False)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    bad_key = run(shared_server, "finish", "not-a-key", check=False)
    assert bad_key.returncode == 2
    assert "not a job key" in bad_key.stderr
    bad_stop = run(shared_server, "list", str(project), "--stop", f"{project}/1/1", check=False)
    assert bad_stop.returncode == 1
    assert "400" in bad_stop.stderr and "stop" in bad_stop.stderr
    down = subprocess.run(
        [*helpers.jobq_command(), "count", "1", "--apikey", "k",
         "--url", f"http://127.0.0.1:{helpers.free_port()}"],
        capture_output=True, text=True, timeout=60,
    )
    assert down.returncode == 1
    assert "cannot reach" in down.stderr


def test_keys_create_list_revoke(shared_server: helpers.Server, project: int) -> None:
    db = ["--db", shared_server.db]
    secret = run(shared_server, "keys", "create", "--project", str(project), "--name",
                 f"robot-{project}", *db).stdout.strip()
    admin = run(shared_server, "keys", "create", "--admin", *db).stdout.strip()
    assert secret.startswith("jq_") and admin.startswith("jq_") and secret != admin
    listed = json_lines(run(shared_server, "keys", "list", "--json", *db).stdout)
    mine = [k for k in listed if k["name"] == f"robot-{project}"]
    assert len(mine) == 1
    assert (mine[0]["project"], mine[0]["revoked"]) == (project, "")
    assert secret not in run(shared_server, "keys", "list", *db).stdout

    url = f"{shared_server.url}/jobq/{project}/count"
    assert httpx.get(url, auth=(secret, "")).status_code == 200
    assert httpx.get(f"{shared_server.url}/jobq/{project + 1}/count",
                     auth=(secret, "")).status_code == 403
    assert httpx.get(f"{shared_server.url}/jobq/{project + 1}/count",
                     auth=(admin, "")).status_code == 200

    out = run(shared_server, "keys", "revoke", str(mine[0]["id"]), *db).stdout
    assert out.strip() == f"revoked key {mine[0]['id']}"
    revoked_at = time.monotonic()
    while httpx.get(url, auth=(secret, "")).status_code == 200:
        assert time.monotonic() - revoked_at < 3.0, "revoked key still works"
        time.sleep(0.1)
    assert httpx.get(url, auth=(secret, "")).status_code == 401
    listed = json_lines(run(shared_server, "keys", "list", "--json", *db).stdout)
    assert [k["revoked"] != "" for k in listed if k["id"] == mine[0]["id"]] == [True]
    again = run(shared_server, "keys", "revoke", str(mine[0]["id"]), *db, check=False)
    assert again.returncode == 1
    usage = run(shared_server, "keys", "create", *db, check=False)
    assert usage.returncode == 2
