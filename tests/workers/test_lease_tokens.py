"""A lost worker's job token, in process on both backends: the real storage, `Workers`,
`Reaper`, `Authenticator` and `JobQueue` on one `ManualClock` (no sleeps). A token is
bound to the run it was issued for (issue 10): once the run was taken from its worker
(requeued, claimed again, finished as lost) the token is refused and changes nothing,
also when its principal was looked up before (the HTTP layer remembers principals)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from jobq import errors
from jobq.core.credentials import Authenticator, JobTokens, Principal
from jobq.core.queue import JobQueue
from jobq.core.workers import Reaper, Wakeups, Workers
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey
from jobq.domain.leases import Timeouts
from jobq.storage import open_storage
from jobq.storage.base import Storage

pytestmark = pytest.mark.anyio

ADMIN = Principal(name="admin", is_admin=True)
P = 7
SECRET = "a-test-signing-secret-of-32-bytes!"
TIMEOUTS = Timeouts.of_seconds(10, 30)


class Rig:
    def __init__(self, storage: Storage, clock: ManualClock) -> None:
        self.storage = storage
        self.clock = clock
        self.tokens = JobTokens(SECRET, self.clock)
        wakeups = Wakeups()
        self.queue = JobQueue(storage, self.tokens, 1000, self.clock)
        self.workers = Workers(storage, self.queue, self.clock, TIMEOUTS, wakeups)
        self.reaper = Reaper(storage, self.clock, TIMEOUTS, wakeups)
        self.auth = Authenticator(storage, self.tokens, (), self.clock)

    async def elapse(self, seconds: float) -> None:
        while seconds > 0:
            step = min(seconds, 1.0)
            self.clock.advance(step)
            seconds -= step
            await self.reaper.tick()

    async def register(self, name: str) -> str:
        return str((await self.workers.register(ADMIN, {"name": name, "slots": 4}))["id"])

    async def claim(self, worker_id: str | None) -> dict[str, Any]:
        params = {} if worker_id is None else {"worker_id": worker_id}
        job = await self.workers.start(ADMIN, P, params, 0)
        assert job is not None
        return job

    async def as_job(self, job: dict[str, Any]) -> Principal:
        return await self.auth.authenticate(job["key"], job["auth"])

    async def meta(self, key: str) -> dict[str, Any]:
        found = await self.storage.get_job_meta(JobKey.parse(key))
        assert found is not None
        return found


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    # positions (and so `running_time`, a token's run) are taken from the manual clock too
    clock = ManualClock(now_ms=time.time_ns() // 1_000_000)
    storage = open_storage(db_url, clock=clock)
    await storage.open()
    try:
        made = Rig(storage, clock)
        await made.reaper.tick()
        yield made
    finally:
        await storage.close()


async def _writes(rig: Rig, who: Principal, key: str) -> dict[str, str]:
    """Each write a job token may make about its job: "ok", or the refusal's class."""
    calls = {
        "update": lambda: rig.queue.update(who, P, [{"key": key, "stale": 1}]),
        "finish": lambda: rig.queue.update(
            who, P, [{"key": key, "state": "finished", "close_reason": "finished"}]),
        "metadata": lambda: rig.queue.set_job_meta(who, JobKey.parse(key), [{"stale": 1}]),
        "delete field": lambda: rig.queue.delete_job_meta_field(
            who, JobKey.parse(key), "worker"),
        "cancel": lambda: rig.queue.cancel(who, P, [{"key": key}], None),
        "remove": lambda: rig.queue.remove_job(who, JobKey.parse(key)),
    }
    outcomes = {}
    for name, call in calls.items():
        try:
            await call()
            outcomes[name] = "ok"
        except errors.JobqError as exc:
            outcomes[name] = type(exc).__name__
    return outcomes


REFUSED = dict.fromkeys(("update", "finish", "metadata", "delete field", "cancel", "remove"),
                        "Unauthorized")


async def test_token_of_a_requeued_and_reclaimed_run_is_refused(rig: Rig) -> None:
    await rig.storage.update_settings(P, {"requeue_lost": True})
    (pushed,) = await rig.queue.push(ADMIN, P, [{"spider": "s"}])
    lost, other = await rig.register("lost"), await rig.register("other")
    first = await rig.claim(lost)
    # looked up while the run is the job's: the HTTP layer would remember this principal
    stale = await rig.as_job(first)
    await rig.elapse(11)
    assert (await rig.meta(pushed["key"]))["state"] == "pending"
    with pytest.raises(errors.Unauthorized, match="put back to pending"):
        await rig.as_job(first)
    assert await rig.workers.heartbeat(ADMIN, other, {"jobs": []})
    second = await rig.claim(other)
    assert second["key"] == first["key"] and second["auth"] != first["auth"]
    with pytest.raises(errors.Unauthorized, match="claimed again"):
        await rig.as_job(first)
    assert await _writes(rig, stale, first["key"]) == REFUSED
    meta = await rig.meta(first["key"])
    assert (meta["state"], meta["worker_id"]) == ("running", other)
    assert "stale" not in meta and "cancel_requested_time" not in meta
    assert meta["worker"] == "other"
    # the current claimer's token works
    current = await rig.as_job(second)
    await rig.queue.set_job_meta(current, JobKey.parse(second["key"]), [{"fresh": 1}])
    await rig.queue.update(current, P, [{"key": second["key"], "state": "finished",
                                         "close_reason": "finished"}])
    meta = await rig.meta(second["key"])
    assert (meta["state"], meta["close_reason"], meta["fresh"]) == ("finished", "finished", 1)


async def test_token_of_a_run_finished_as_lost_is_refused(rig: Rig) -> None:
    await rig.queue.push(ADMIN, P, [{"spider": "s"}])
    job = await rig.claim(await rig.register("lost"))
    stale = await rig.as_job(job)
    await rig.elapse(11)
    before = await rig.meta(job["key"])
    assert (before["state"], before["close_reason"]) == ("finished", "lost")
    with pytest.raises(errors.Unauthorized, match=r"finished by the server \(lost\)"):
        await rig.as_job(job)
    assert await _writes(rig, stale, job["key"]) == REFUSED
    assert await rig.meta(job["key"]) == before


async def test_token_of_a_run_the_server_finished_after_a_cancel_is_refused(rig: Rig) -> None:
    """The worker heartbeats but does not stop a cancelled job: the server finishes it with
    `cancel_timeout`, and the worker's token may not overwrite that outcome."""
    await rig.queue.push(ADMIN, P, [{"spider": "s"}])
    worker = await rig.register("w")
    job = await rig.claim(worker)
    stale = await rig.as_job(job)
    assert await rig.queue.cancel(ADMIN, P, [{"key": job["key"]}], None) == 1
    for _ in range(4):
        await rig.elapse(8)
        await rig.workers.heartbeat(ADMIN, worker, {"jobs": [job["key"]]})
    before = await rig.meta(job["key"])
    assert (before["state"], before["close_reason"]) == ("finished", "cancel_timeout")
    with pytest.raises(errors.Unauthorized, match=r"finished by the server \(cancel_timeout\)"):
        await rig.as_job(job)
    assert await _writes(rig, stale, job["key"]) == REFUSED
    assert await rig.meta(job["key"]) == before


async def test_same_worker_reclaiming_gets_a_new_token_and_the_old_one_ends(rig: Rig) -> None:
    await rig.storage.update_settings(P, {"requeue_lost": True})
    await rig.queue.push(ADMIN, P, [{"spider": "s"}])
    worker = await rig.register("w")
    first = await rig.claim(worker)
    await rig.elapse(11)
    await rig.workers.heartbeat(ADMIN, worker, {"jobs": []})  # back from being lost
    second = await rig.claim(worker)
    assert second["key"] == first["key"]
    with pytest.raises(errors.Unauthorized, match="claimed again"):
        await rig.as_job(first)
    assert (await rig.as_job(second)).job == JobKey.parse(second["key"])


async def test_old_way_claims_and_running_pushes_keep_their_tokens(rig: Rig) -> None:
    await rig.queue.push(ADMIN, P, [{"spider": "s"}])
    claimed = await rig.claim(None)
    (pushed,) = await rig.queue.push(ADMIN, P, [{"spider": "s", "state": "running"}])
    assert isinstance(_claims(claimed)["run"], int)
    assert _claims(pushed)["run"] is None  # nothing but a deletion ends its one run
    for job in (claimed, pushed):
        assert "lease" not in _claims(job)
        who = await rig.as_job(job)
        await rig.elapse(30)  # no lease: nothing is lost, however long it runs
        await rig.queue.update(who, P, [{"key": job["key"], "state": "finished"}])
        # after its own finish the token still works, as it always did
        await rig.queue.set_job_meta(who, JobKey.parse(job["key"]), [{"after": 1}])
        assert (await rig.as_job(job)).job is not None
        assert (await rig.meta(job["key"]))["after"] == 1


def _claims(job: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(job["auth"], options={"verify_signature": False})
    return claims


def _legacy_token(rig: Rig, key: str) -> str:
    """A token as servers issued them before tokens named their run."""
    now = rig.clock.now_ms() // 1000
    return jwt.encode({"aud": f"job:{key}", "sub": key, "iat": now, "exp": now + 3600},
                      SECRET, algorithm="HS256")


async def test_old_format_tokens_work_until_their_job_runs_again(rig: Rig) -> None:
    """Tokens issued before they named their run: judged by when they were issued."""
    await rig.storage.update_settings(P, {"requeue_lost": True})
    await rig.queue.push(ADMIN, P, [{"spider": "s"}, {"spider": "s"}])
    plain = await rig.claim(None)
    legacy = {**plain, "auth": _legacy_token(rig, plain["key"])}
    await rig.as_job(legacy)
    worker = await rig.register("w")
    leased = await rig.claim(worker)
    legacy_leased = {**leased, "auth": _legacy_token(rig, leased["key"])}
    stale = await rig.as_job(legacy_leased)
    await rig.elapse(11)  # the leased run is lost and requeued; the plain one runs on
    await rig.as_job(legacy)
    with pytest.raises(errors.Unauthorized, match="put back to pending"):
        await rig.as_job(legacy_leased)
    await rig.workers.heartbeat(ADMIN, worker, {"jobs": []})
    await rig.claim(worker)
    with pytest.raises(errors.Unauthorized, match="claimed again"):
        await rig.as_job(legacy_leased)
    assert await _writes(rig, stale, leased["key"]) == REFUSED
    await rig.queue.set_job_meta(await rig.as_job(legacy), JobKey.parse(plain["key"]),
                                 [{"still": "works"}])


async def test_a_heartbeat_hands_out_a_fresh_token_of_the_run(rig: Rig) -> None:
    """A crawl may outlive the token it was claimed with: each `continue` carries a fresh
    token of the same run; a `stop` carries none."""
    rig.tokens.lifetime = 30  # seconds
    await rig.queue.push(ADMIN, P, [{"spider": "s"}, {"spider": "s"}])
    worker = await rig.register("w")
    job = await rig.claim(worker)
    fresh = job["auth"]
    for _ in range(6):  # 48 s: past the lifetime of the claim's token
        await rig.elapse(8)
        answer = await rig.workers.heartbeat(ADMIN, worker, {"jobs": [job["key"]]})
        (one,) = answer["jobs"]
        assert one["action"] == "continue"
        fresh = one["auth"]
    with pytest.raises(errors.Unauthorized):
        await rig.as_job(job)  # the claim's token expired
    who = await rig.auth.authenticate(job["key"], fresh)
    await rig.queue.update(
        who, P, [{"key": job["key"], "state": "finished", "close_reason": "finished"}])
    assert (await rig.meta(job["key"]))["close_reason"] == "finished"
    answer = await rig.workers.heartbeat(ADMIN, worker, {"jobs": [job["key"]]})
    assert answer["jobs"][0]["action"] == "stop" and "auth" not in answer["jobs"][0]
