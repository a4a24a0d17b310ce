"""`jobq push` with spider arguments, job settings and units, as the app API stores them."""

from __future__ import annotations

import os
import subprocess

import orjson

from tests import helpers


def test_push_stores_spider_args_job_settings_and_units(server: helpers.Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    done = subprocess.run(
        [*helpers.jobq_command(), "push", "--url", server.url, "--apikey", server.admin_key,
         "--json", "53", "books", "-a", "category=fiction", "-a", "q=a=b", "-s",
         "DOWNLOAD_DELAY=1", "--units", "2", "--tag", "nightly"],
        env=env, capture_output=True, text=True, check=True)
    key = orjson.loads(done.stdout.splitlines()[0])["key"]
    with server.client() as http:
        meta = http.get(f"/jobs/{key}").json()
    assert meta["spider_args"] == {"category": "fiction", "q": "a=b"}
    assert meta["job_settings"] == {"DOWNLOAD_DELAY": "1"}
    assert meta["units"] == 2
    assert meta["tags"] == ["nightly"]


def test_push_refuses_an_argument_without_a_value(server: helpers.Server) -> None:
    done = subprocess.run(
        [*helpers.jobq_command(), "push", "--url", server.url, "--apikey", server.admin_key,
         "53", "books", "-a", "category"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "'category' is not NAME=VALUE" in done.stderr
    with server.client() as http:
        assert http.get("/jobq/53/count", params={"state": "pending"}).json() == 0
