"""Job tokens against a real server: they end with their job, and with their run when
the run is taken from a lost worker, carry an expiry, can be signed with a secret kept
out of the database, and survive a rotation of the secret."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
import requests
from scrapinghub import HubstorageClient

from jobq.core import credentials
from jobq.storage import open_storage
from tests import helpers
from tests.helpers import Server, jobq_command

P = 53


def _started(server: Server, n: int = 1) -> list[tuple[str, str]]:
    """n running jobs: (key, token) each."""
    with server.client() as client:
        body = b"\n".join(orjson.dumps({"spider": "s1"}) for _ in range(n))
        assert client.post(f"/jobq/{P}/push", content=body).status_code == 200
        found = []
        for _ in range(n):
            answer = client.post(f"/jobq/{P}/startjob")
            assert answer.status_code == 200, answer.text
            found.append((answer.json()["key"], answer.json()["auth"]))
    return found


def _as_job(server: Server, job: tuple[str, str]) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=job, timeout=10)


def _token_calls(client: httpx.Client, key: str) -> dict[str, int]:
    """Every kind of call a job token may make about its job: their statuses."""
    return {
        "read": client.get(f"/jobs/{key}").status_code,
        "write": client.post(f"/jobs/{key}", content=b'{"rewritten":true}').status_code,
        "write field": client.post(f"/jobs/{key}/x", content=b"1").status_code,
        "delete field": client.delete(f"/jobs/{key}/x").status_code,
        "update": client.post(f"/jobq/{P}/update",
                              content=orjson.dumps({"key": key, "x": 1})).status_code,
        "remove": client.delete(f"/jobs/{key}").status_code,
    }


def test_a_leaked_token_dies_with_its_job(server: Server) -> None:
    deleted, removed = _started(server, 2)
    with server.client() as admin:
        answer = admin.post(f"/jobq/{P}/update",
                            content=orjson.dumps({"key": deleted[0], "state": "deleted"}))
        assert answer.status_code == 200, answer.text
        assert admin.delete(f"/jobs/{removed[0]}").status_code == 200
    for job in (deleted, removed):
        with _as_job(server, job) as client:
            statuses = _token_calls(client, job[0])
        assert set(statuses.values()) == {401}, (job[0], statuses)
    with server.client() as admin:
        meta = admin.get(f"/jobq/{P}/jobsummary", params={"key": deleted[0],
                                                          "jobmeta": "rewritten"})
        assert meta.status_code == 200
        assert "rewritten" not in meta.text


def test_tokens_of_a_live_job_keep_working_through_finish(server: Server) -> None:
    (job,) = _started(server)
    with _as_job(server, job) as client:
        finish = client.post(f"/jobq/{P}/update",
                             content=orjson.dumps({"key": job[0], "state": "finished"}))
        assert finish.status_code == 200, finish.text
        statuses = _token_calls(client, job[0])
    assert statuses == {"read": 200, "write": 200, "write field": 200, "delete field": 200,
                        "update": 200, "remove": 200}


def _stored_secrets(db: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        storage = open_storage(db)
        await storage.open()
        try:
            return await storage.secrets_named(credentials.TOKEN_SECRET_NAME)
        finally:
            await storage.close()

    return asyncio.run(read())


def test_a_secret_from_a_file_signs_tokens_that_expire(db_url: str, tmp_path: Path) -> None:
    secret, older = "file-secret-" + "1" * 24, "older-secret-" + "2" * 24
    secret_file = tmp_path / "token-secret"
    secret_file.write_text(f"{secret}\n{older}\n")
    server = Server(db=db_url, log=tmp_path / "server.log", extra_args=[
        "--token-secret-file", str(secret_file), "--token-lifetime", "600"]).start()
    try:
        ((key, token),) = _started(server)
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=f"job:{key}")
        assert claims["exp"] - claims["iat"] == 600

        def forged(signing: str, exp: int) -> str:
            return jwt.encode({"aud": f"job:{key}", "iat": claims["iat"], "exp": exp},
                              signing, algorithm="HS256")

        for token_, expected in [(token, 200),
                                 (forged(secret, claims["iat"] + 60), 200),
                                 (forged(older, claims["iat"] + 60), 200),
                                 (forged(secret, claims["iat"] - 1), 401),
                                 (forged("another-secret-" + "3" * 24, claims["exp"]), 401)]:
            with _as_job(server, (key, token_)) as client:
                assert client.get(f"/jobs/{key}").status_code == expected
    finally:
        server.stop()
    assert _stored_secrets(db_url) == {}, "the secret was given: none is stored"


def test_a_short_secret_is_refused_at_start(db_url: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "token-secret"
    secret_file.write_text("short\n")
    by_file = subprocess.run(
        [*jobq_command(), "serve", "--db", db_url, "--token-secret-file", str(secret_file)],
        capture_output=True, text=True, timeout=60,
    )
    by_env = subprocess.run(
        [*jobq_command(), "serve", "--db", db_url], capture_output=True, text=True, timeout=60,
        env={**os.environ, "JOBQ_TOKEN_SECRET": "short"},
    )
    assert by_file.returncode == by_env.returncode == 2
    assert "shorter than 32 characters" in by_file.stderr
    assert "JOBQ_TOKEN_SECRET: token secret on line 1 is shorter" in by_env.stderr


def test_rotating_the_secret_keeps_handed_out_tokens_working(
    db_url: str, tmp_path: Path
) -> None:
    server = Server(db=db_url, log=tmp_path / "server.log").start()
    try:
        (before,) = _started(server)
        assert len(_stored_secrets(db_url)) == 1
        done = subprocess.run([*jobq_command(), "keys", "rotate-token-secret", "--db", db_url],
                              capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.startswith(f"new token secret {credentials.TOKEN_SECRET_NAME}@")
        server.stop()
        server.start()  # signs with the new secret now
        (after,) = _started(server)
        assert len(_stored_secrets(db_url)) == 2
        for job in (before, after):
            with _as_job(server, job) as client:
                assert client.get(f"/jobs/{job[0]}").status_code == 200
        kids = {jwt.get_unverified_header(job[1])["kid"] for job in (before, after)}
        assert len(kids) == 2, "the new token is signed with the new secret"
    finally:
        server.stop()



# -- a lost worker's token (issue 10) ------------------------------------------------------

#: the worker timeout of these servers (seconds): the real reaper declares a silent worker
#: lost this long after its last heartbeat (waits below are on conditions, with deadlines)
LEASE_TIMEOUT = ["--worker-timeout", "2"]



class _Heartbeats:
    """A worker that stays alive: registered with the admin key, heartbeating its jobs
    in a thread until closed."""

    def __init__(self, server: Server, name: str) -> None:
        self._client = server.client()
        answer = self._client.post("/workers", json={"name": name, "slots": 2})
        assert answer.status_code == 200, answer.text
        self.id: str = answer.json()["id"]
        self.jobs: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            self._client.post(f"/workers/{self.id}/heartbeat", json={"jobs": self.jobs})

    def claim(self) -> dict[str, str]:
        answer = self._client.post(f"/jobq/{P}/startjob", json={"worker_id": self.id})
        assert answer.status_code == 200, answer.text
        job: dict[str, str] = answer.json()
        self.jobs.append(job["key"])
        return job

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()


def _silent_claim(client: httpx.Client, name: str) -> dict[str, str]:
    """A job claimed by a worker that never heartbeats: it is lost a worker timeout later."""
    worker_id = client.post("/workers", json={"name": name}).json()["id"]
    answer = client.post(f"/jobq/{P}/startjob", json={"worker_id": worker_id})
    assert answer.status_code == 200, answer.text
    job: dict[str, str] = answer.json()
    return job


def _token_writes(client: httpx.Client, key: str) -> dict[str, int]:
    """Each way a job token changes its job: their statuses."""
    return {
        "update": client.post(f"/jobq/{P}/update",
                              content=orjson.dumps({"key": key, "stale": 1})).status_code,
        "metadata": client.post(f"/jobs/{key}", content=b'{"stale": 1}').status_code,
        "items": client.post(f"/items/{key}", params={"start": 0},
                             content=b'{"stale": 1}\n').status_code,
        "logs": client.post(f"/logs/{key}", params={"start": 0},
                            content=b'{"message": "stale", "level": 20, "time": 1}\n'
                            ).status_code,
        "finish": client.post(f"/jobq/{P}/update", content=orjson.dumps(
            {"key": key, "state": "finished", "close_reason": "finished"})).status_code,
    }


def _state(client: httpx.Client, key: str) -> dict[str, object]:
    """What the stale writes must not have changed: metadata and item count."""
    meta = client.get(f"/jobs/{key}").json()
    items = client.get(f"/items/{key}/stats").json()["totals"]["input_values"]
    return {**meta, "items": items}


def test_a_lost_workers_token_is_refused_once_its_job_was_claimed_again(
    db_url: str, tmp_path: Path
) -> None:
    server = Server(db=db_url, log=tmp_path / "server.log", extra_args=LEASE_TIMEOUT).start()
    other: _Heartbeats | None = None
    try:
        with server.client() as admin, server.client() as watcher:
            admin.post(f"/projects/{P}/settings", json={"requeue_lost": True}).raise_for_status()
            admin.post(f"/jobq/{P}/push", json={"spider": "s"}).raise_for_status()
            lost = _silent_claim(admin, "lost")
            key = lost["key"]
            with _as_job(server, (key, lost["auth"])) as stale:
                assert stale.post(f"/jobs/{key}", content=b'{"mine": 1}').status_code == 200

                def requeued() -> bool:
                    # the token is used until the job went back to pending: the server
                    # remembers its principal for a moment, and must not trust it then
                    stale.get(f"/jobs/{key}")
                    return bool(watcher.get(f"/jobs/{key}").json()["state"] == "pending")

                helpers.wait_until("the silent worker's job is requeued", requeued)
                other = _Heartbeats(server, "other")
                current = other.claim()
                assert current["key"] == key and current["auth"] != lost["auth"]
                before = _state(admin, key)
                statuses = _token_writes(stale, key)
                assert set(statuses.values()) == {401}, statuses
                refusal = stale.post(f"/jobs/{key}", content=b'{"stale": 1}')
                assert "claimed again after its worker was declared lost" in refusal.text
                assert _state(admin, key) == before
                assert before["state"] == "running" and before["worker"] == "other"
                assert "stale" not in before and before["items"] == 0
            # the official client, with the lost worker's token: refused
            hs = HubstorageClient(auth=(key, lost["auth"]), endpoint=server.url)
            try:
                with pytest.raises(requests.HTTPError) as info:
                    hs.get_job(key).update_metadata(stale=1)
                assert info.value.response.status_code == 401
            finally:
                hs.session.close()
            # the current claimer's token works, through the official client too
            hs = HubstorageClient(auth=(key, current["auth"]), endpoint=server.url)
            try:
                job = hs.get_job(key)
                job.items.write({"fresh": 1})
                job.close_writers()
                job.update_metadata(progress=100)
                assert list(hs.get_project(P).jobq.finish(key, close_reason="finished")) == [
                    {"key": key, "prevstate": "running"}]
            finally:
                hs.session.close()
            after = _state(admin, key)
            assert (after["state"], after["close_reason"], after["progress"], after["items"]) \
                == ("finished", "finished", 100, 1)
    finally:
        if other is not None:
            other.close()
        server.stop()


def test_a_lost_workers_token_is_refused_once_its_job_finished_as_lost(
    db_url: str, tmp_path: Path
) -> None:
    server = Server(db=db_url, log=tmp_path / "server.log", extra_args=LEASE_TIMEOUT).start()
    try:
        with server.client() as admin:
            admin.post(f"/jobq/{P}/push", json={"spider": "s"}).raise_for_status()
            lost = _silent_claim(admin, "lost")
            key = lost["key"]
            helpers.wait_until("the silent worker's job is finished as lost",
                        lambda: admin.get(f"/jobs/{key}").json()["state"] == "finished")
            before = _state(admin, key)
            assert (before["close_reason"], before["completed_by"]) == ("lost", "jobq")
            with _as_job(server, (key, lost["auth"])) as stale:
                statuses = {**_token_writes(stale, key),
                            "read": stale.get(f"/jobs/{key}").status_code}
                assert set(statuses.values()) == {401}, statuses
                refusal = stale.get(f"/jobs/{key}")
                assert "finished by the server (lost)" in refusal.text
            assert _state(admin, key) == before
            # a worker that comes back after it was declared lost gets "stop" for it
            (worker,) = admin.get("/workers").json()
            answer = admin.post(f"/workers/{worker['id']}/heartbeat", json={"jobs": [key]})
            (job,) = answer.json()["jobs"]
            assert (job["action"], job["finish"]) == ("stop", False)
    finally:
        server.stop()
