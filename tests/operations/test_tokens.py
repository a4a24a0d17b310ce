"""Job tokens against a real server: they end with their job, carry an expiry, can be
signed with a secret kept out of the database, and survive a rotation of the secret."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import httpx
import jwt
import orjson

from jobq.core import credentials
from jobq.storage import open_storage
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

