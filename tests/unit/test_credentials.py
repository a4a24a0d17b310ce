"""Keys, job tokens and who may reach what."""

from __future__ import annotations

import pytest

from jobq import errors
from jobq.core import credentials
from jobq.core.credentials import JobTokens, Principal
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
