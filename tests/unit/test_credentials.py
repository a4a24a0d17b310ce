"""Keys, job tokens and who may reach what."""

from __future__ import annotations

import jwt
import pytest

from jobq import errors
from jobq.core import credentials
from jobq.core.credentials import JobTokens, Principal
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey
from jobq.http.ratelimit import TokenBuckets


def test_api_keys_are_random_hashed_and_not_hex() -> None:
    a, b = credentials.new_api_key(), credentials.new_api_key()
    assert a != b and a.startswith("jq_") and len(a) > 30
    with pytest.raises(ValueError):
        bytes.fromhex(a)  # the official client would take a hex string for a job token
    assert credentials.hash_key(a) == credentials.hash_key(a) != credentials.hash_key(b)


def test_job_tokens_are_good_for_one_job_only() -> None:
    tokens = JobTokens("s" * 32)
    key = JobKey(53, 1, 2)
    token = tokens.issue(key)
    assert tokens.verify(key, token)
    assert not tokens.verify(JobKey(53, 1, 3), token)
    assert not JobTokens("o" * 32).verify(key, token)
    assert not tokens.verify(key, token + "x")


def test_job_tokens_are_the_jwts_pyjwt_makes() -> None:
    """Tokens are signed without PyJWT (it costs most of a claim's Python time): the same
    bytes as `jwt.encode`, which verify as before."""
    clock = ManualClock(1_700_000_000_123)
    for secret in ("s" * 32, "ünïcode-secret-" * 3):
        tokens = JobTokens(secret, clock, lifetime=3600.5)
        for key, run, lease in ((JobKey(53, 1, 7), None, None),
                                (JobKey(10**17, 2, 10**17), 1_700_000_000_001, "ab12cd34ef56ab78")):
            token = tokens.issue(key, run=run, lease_id=lease)
            now = 1_700_000_000
            claims: dict[str, object] = {"aud": f"job:{key}", "sub": str(key), "iat": now,
                                         "exp": now + 3601, "run": run}
            if lease is not None:
                claims["lease"] = lease
            assert token == jwt.encode(claims, secret, algorithm="HS256",
                                       headers={"kid": credentials._kid(secret)})
            assert tokens.verify(key, token) and not tokens.verify(JobKey(53, 1, 8), token)
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=f"job:{key}",
                                options={"verify_exp": False})
            assert claims["sub"] == str(key)


def test_principals_reach_what_they_should() -> None:
    admin = Principal("admin", is_admin=True)
    alice = Principal("alice", project=53)
    job = Principal("53/1/2", project=53, job=JobKey(53, 1, 2))
    admin.check_project(54)
    admin.check_admin()
    alice.check_project(53)
    alice.check_job(JobKey(53, 9, 9))
    job.check_job(JobKey(53, 1, 2))
    for denied in (lambda: alice.check_project(54), lambda: alice.check_admin(),
                   lambda: job.check_project(53), lambda: job.check_job(JobKey(53, 1, 3))):
        with pytest.raises(errors.Forbidden):
            denied()
    assert alice.can_see(53) and not alice.can_see(54) and not job.can_see(53)


def test_token_buckets_allow_bursts_then_the_rate() -> None:
    buckets = TokenBuckets(rate=1000.0, burst=3)
    assert [buckets.wait_time("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.wait_time("k") > 0
    assert buckets.wait_time("other") == 0.0


# -- job tokens: expiry, rotation (time from a ManualClock, never slept) -------------------

KEY = JobKey(53, 1, 2)


def test_job_tokens_expire_after_their_lifetime() -> None:
    clock = ManualClock()
    tokens = JobTokens("s" * 32, clock, lifetime=3600)
    token = tokens.issue(KEY)
    clock.advance(3599)
    assert tokens.verify(KEY, token)
    clock.advance(1)
    assert not tokens.verify(KEY, token)


def test_a_renewed_token_gets_its_own_lifetime() -> None:
    clock = ManualClock()
    tokens = JobTokens("s" * 32, clock, lifetime=3600)
    short = tokens.issue(KEY, lifetime=60)
    clock.advance(60)
    assert not tokens.verify(KEY, short)
    renewed = tokens.issue(KEY, lifetime=120)
    clock.advance(119)
    assert tokens.verify(KEY, renewed)


def test_tokens_made_before_expiry_existed_end_a_lifetime_after_they_were_made() -> None:
    clock = ManualClock()
    now = clock.now_ms() // 1000
    legacy = jwt.encode({"aud": f"job:{KEY}", "sub": str(KEY), "iat": now}, "s" * 32,
                        algorithm="HS256")
    tokens = JobTokens("s" * 32, clock, lifetime=3600)
    assert tokens.verify(KEY, legacy)
    clock.advance(3600)
    assert not tokens.verify(KEY, legacy)
    no_iat = jwt.encode({"aud": f"job:{KEY}"}, "s" * 32, algorithm="HS256")
    assert not tokens.verify(KEY, no_iat)


def test_a_rotated_secret_signs_and_the_old_one_still_verifies() -> None:
    old, new = "o" * 32, "n" * 32
    before = JobTokens([old]).issue(KEY)
    rotated = JobTokens([new, old])
    after = rotated.issue(KEY)
    assert rotated.verify(KEY, before) and rotated.verify(KEY, after)
    assert JobTokens([new]).verify(KEY, after)
    assert not JobTokens([new]).verify(KEY, before)  # once the old secret is dropped
    assert not JobTokens([old]).verify(KEY, after)
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]


def test_secrets_from_a_file_or_the_environment() -> None:
    first, second = "first-secret-" + "1" * 20, "second-secret-" + "2" * 20
    assert credentials.parse_secrets(f"\n  {first} \n{second}\n", "f") == [first, second]
    with pytest.raises(errors.JobqError, match="holds no token secret"):
        credentials.parse_secrets("\n \n", "f")
    with pytest.raises(errors.JobqError, match="line 2 is shorter than 32"):
        credentials.parse_secrets(f"{first}\nshort\n", "f")
