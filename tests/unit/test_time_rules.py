"""The rules that read the clock, on real databases (both backends) with a ManualClock:
queue positions and `ts`, the key cache, job-token expiry, secret rotation. Time is moved,
never slept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobq import errors
from jobq.core import credentials
from jobq.core.credentials import Authenticator, JobTokens, Principal
from jobq.core.queue import JobQueue, ListRequest, plain
from jobq.domain.clock import ManualClock
from jobq.domain.jobs import JobKey, State
from jobq.storage import open_storage
from jobq.storage.base import Storage

pytestmark = pytest.mark.anyio

P = 53
ADMIN = Principal("admin", is_admin=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(db_url: str, clock: ManualClock) -> AsyncIterator[Storage]:
    storage = open_storage(db_url, clock=clock)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
def queue(store: Storage, clock: ManualClock) -> JobQueue:
    return JobQueue(store, JobTokens("t" * 32, clock), max_count=1000, clock=clock)


async def _push(queue: JobQueue, n: int = 1, **fields: Any) -> list[str]:
    rows = await queue.push(ADMIN, P, [{"spider": "s1", **fields} for _ in range(n)])
    return [str(r["key"]) for r in rows]


async def _listed(queue: JobQueue, state: str = "pending", **filters: Any) -> list[dict[str, Any]]:
    req = ListRequest(states=(State.parse(state),), **filters)
    return await queue.list_jobs(ADMIN, P, req)


async def test_ts_is_the_clock_and_elapsed_is_measured_on_it(
    queue: JobQueue, clock: ManualClock
) -> None:
    (key,) = await _push(queue)
    clock.advance(2.5)
    (row,) = await _listed(queue)
    assert row["key"] == key
    assert row["ts"] == row["pending_time"] == clock.now_ms() - 2500
    assert row["elapsed"] == 2500
    # the same row built as JSON text by the database, as `list` serves it
    page = await queue.list_page(ADMIN, P, ListRequest(states=(State.PENDING,)))
    assert plain(page) == [row]


async def test_ts_never_goes_back_when_the_clock_does(
    queue: JobQueue, clock: ManualClock
) -> None:
    (first,) = await _push(queue)
    clock.set_wall(clock.now_ms() - 60_000)  # NTP steps the clock back a minute
    (second,) = await _push(queue)
    rows = await _listed(queue)
    assert [r["key"] for r in rows] == [second, first]  # newest first, still
    assert rows[0]["ts"] >= rows[1]["ts"]


async def test_startts_and_endts_select_exact_milliseconds(
    queue: JobQueue, clock: ManualClock
) -> None:
    keys = []
    for _ in range(4):  # one job a millisecond, without sleeping for it
        keys += await _push(queue)
        clock.advance(0.001)
    t0 = clock.now_ms() - 4
    rows = await _listed(queue, startts=t0 + 1, endts=t0 + 3)  # endts is exclusive
    assert sorted(r["key"] for r in rows) == sorted(keys[1:3])
    assert {r["ts"] for r in rows} == {t0 + 1, t0 + 2}


async def test_a_revoked_key_works_until_the_cache_expires(
    store: Storage, clock: ManualClock
) -> None:
    secret = credentials.new_api_key()
    created = await store.create_api_key(credentials.hash_key(secret), "alice", P)
    auth = Authenticator(store, JobTokens("t" * 32, clock), (), clock)
    assert (await auth.authenticate(secret, None)).project == P
    assert await store.revoke_api_key(created.key_id)
    clock.advance(credentials.KEY_CACHE_SECONDS - 0.1)
    assert (await auth.authenticate(secret, None)).project == P  # still cached
    clock.advance(0.1)
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(secret, None)


async def test_a_job_token_expires_and_dies_with_its_job(
    store: Storage, queue: JobQueue, clock: ManualClock
) -> None:
    auth = Authenticator(store, queue.tokens, (), clock)
    await _push(queue, 3)
    started = [await queue.start(ADMIN, P, {}) for _ in range(3)]
    a, b, c = [(s["key"], s["auth"]) for s in started if s is not None]
    assert (await auth.authenticate(*a)).job == JobKey.parse(a[0])

    await queue.update(ADMIN, P, [{"key": b[0], "state": "deleted"}])
    await queue.remove_job(ADMIN, JobKey.parse(c[0]))
    for gone in (b, c):
        with pytest.raises(errors.Unauthorized, match="was deleted"):
            await auth.authenticate(*gone)

    await queue.update(ADMIN, P, [{"key": a[0], "state": "finished"}])
    assert (await auth.authenticate(*a)).job is not None  # a finished job keeps its token
    clock.advance(credentials.DEFAULT_TOKEN_LIFETIME)
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(*a)


async def test_rotation_keeps_old_tokens_until_they_expire_then_forgets_the_secret(
    store: Storage, clock: ManualClock
) -> None:
    lifetime = 3600
    key = JobKey(P, 1, 1)
    initial = await credentials.stored_secrets(store)
    assert len(initial) == 1 and await credentials.stored_secrets(store) == initial  # made once
    old_token = JobTokens(initial, clock, lifetime).issue(key)

    name, forgotten = await credentials.rotate_secret(store, clock, lifetime)
    assert forgotten == []
    secrets = await credentials.stored_secrets(store)
    assert len(secrets) == 2 and secrets[1] == initial[0]
    second = JobTokens(secrets, clock, lifetime)
    new_token = second.issue(key)
    assert second.verify(key, old_token) and second.verify(key, new_token)

    # a lifetime (and a refresh) after the rotation no token of the first secret is left
    clock.advance(lifetime + credentials.SECRET_REFRESH_SECONDS + 1)
    _, forgotten = await credentials.rotate_secret(store, clock, lifetime)
    assert forgotten == [credentials.TOKEN_SECRET_NAME]
    assert len(await credentials.stored_secrets(store)) == 2
    assert name in await store.secrets_named(credentials.TOKEN_SECRET_NAME)


async def test_a_running_server_picks_up_a_rotation(store: Storage, clock: ManualClock) -> None:
    async def reload() -> list[str]:
        return await credentials.stored_secrets(store)

    node_a = JobTokens(await reload(), clock, reload=reload)
    node_b = JobTokens(await reload(), clock, reload=reload)
    await credentials.rotate_secret(store, clock)
    key = JobKey(P, 1, 1)
    # node b restarted: it signs with the new secret, which node a has not read yet
    node_b.use(await reload())
    token = node_b.issue(key)
    assert not node_a.knows_signer(token)
    clock.advance(1)
    await node_a.refresh(force=True)  # what an unknown signer asks for
    assert node_a.verify(key, token)
    # and within a refresh period node a signs with the new secret too
    clock.advance(credentials.SECRET_REFRESH_SECONDS)
    await node_a.refresh()
    assert node_a.issue(key).split(".")[0] == token.split(".")[0]  # same header (kid)


async def test_queue_depths_come_from_one_read_for_at_most_n_projects(store: Storage) -> None:
    from jobq.domain.records import NewJob

    def job(state: State) -> NewJob:
        return NewJob("s1", state, 2, None, None, {})

    for project in (7, 5, 9):
        await store.push(project, [job(State.PENDING), job(State.PENDING),
                                   job(State.RUNNING)], "admin")
    depths = await store.queue_depths(2)
    assert depths == {5: {State.PENDING: 2, State.RUNNING: 1},
                      7: {State.PENDING: 2, State.RUNNING: 1}}
    assert set(await store.queue_depths(1000)) == {5, 7, 9}
