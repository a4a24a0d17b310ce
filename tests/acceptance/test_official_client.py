"""The official `scrapinghub` client (2.9.0), unchanged but for `endpoint=`, against a
real `jobq serve`: every call it makes on the JobQ resources.

Calls that need the Dash API (`jobs.run`, `update_tags`) are outside our server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from scrapinghub import HubstorageClient, ScrapinghubClient
from scrapinghub.client import exceptions as sh_errors
from scrapinghub.hubstorage.jobq import DuplicateJobError
from scrapinghub.hubstorage.project import Project as HsProject

from tests import helpers


@pytest.fixture
def hs(shared_server: helpers.Server) -> Iterator[HubstorageClient]:
    client = HubstorageClient(auth=shared_server.admin_key, endpoint=shared_server.url)
    yield client
    client.session.close()


@pytest.fixture
def proj(hs: HubstorageClient, project: int) -> HsProject:
    return hs.get_project(project)


@pytest.fixture
def sc(shared_server: helpers.Server) -> Iterator[ScrapinghubClient]:
    client = ScrapinghubClient(shared_server.admin_key, endpoint=shared_server.url)
    yield client
    client._hsclient.session.close()
    client._connection._session.close()


def keys(rows: Any) -> list[str]:
    return [row["key"] for row in rows]


def push_finished(proj: HsProject, spider: str, n: int, **params: Any) -> list[str]:
    """n jobs of `spider`, finished one after the other (in distinct milliseconds)."""
    made = []
    for _ in range(n):
        key = proj.jobq.push(spider, **params)["key"]
        time.sleep(0.003)
        list(proj.jobq.finish(key))
        made.append(key)
    return made


# -- push ----------------------------------------------------------------------------------


def test_client_push_job_stores_metadata(hs: HubstorageClient, project: int) -> None:
    job = hs.push_job(project, "spider1", priority=3, units=2, tags=["a", "b"],
                      args={"x": 1}, auth_hint=None)
    assert job.key == f"{project}/1/1"
    meta = dict(hs.get_job(job.key).metadata)
    assert meta["project"] == project
    assert meta["spider"] == "spider1"
    assert meta["state"] == "pending"
    assert meta["priority"] == 3
    assert meta["units"] == 2
    assert meta["tags"] == ["a", "b"]
    assert meta["args"] == {"x": 1}
    assert meta["auth_hint"] is None
    assert meta["scheduled_by"] == "admin"
    assert isinstance(meta["pending_time"], int)
    assert "auth" not in meta and "running_time" not in meta


def test_project_push_job_numbers_jobs_per_spider(proj: HsProject, project: int) -> None:
    first = proj.push_job("alpha")
    second = proj.push_job("alpha")
    other = proj.push_job("beta")
    assert [first.key, second.key, other.key] == [
        f"{project}/1/1", f"{project}/1/2", f"{project}/2/1"
    ]
    assert first.metadata["priority"] == 2  # the default
    assert first.metadata["units"] == 1


def test_jobq_push_returns_auth_only_for_running_jobs(
    proj: HsProject, shared_server: helpers.Server
) -> None:
    pending = proj.jobq.push("s")
    running = proj.jobq.push("s", state="running")
    assert pending["auth"] is None
    assert isinstance(running["auth"], str)
    meta = dict(proj.get_job(running["key"]).metadata)
    assert meta["state"] == "running"
    assert meta["started_by"] == "admin"
    assert isinstance(meta["running_time"], int)
    worker = HubstorageClient(auth=(running["key"], running["auth"]),
                              endpoint=shared_server.url)
    try:
        assert worker.get_job(running["key"]).metadata["spider"] == "s"
    finally:
        worker.session.close()


def test_push_duplicate_unique_raises(proj: HsProject) -> None:
    first = proj.jobq.push("s", unique="h1")
    with pytest.raises(DuplicateJobError, match="Active job exists"):
        proj.jobq.push("s", unique="h1")
    with pytest.raises(DuplicateJobError):
        proj.push_job("other-spider", unique="h1")  # unique is per project
    proj.jobq.push("s", unique="h2")
    list(proj.jobq.finish(first["key"]))
    again = proj.jobq.push("s", unique="h1")  # no active job holds h1 any more
    assert again["key"] != first["key"]
    assert proj.jobq.summary("pending")["count"] == 2


# -- list --------------------------------------------------------------------------------


def test_list_defaults_to_finished_newest_first(proj: HsProject) -> None:
    done = push_finished(proj, "s", 3)
    proj.jobq.push("s")  # pending: not listed by default
    rows = list(proj.jobq.list())
    assert keys(rows) == done[::-1]
    row = rows[0]
    assert row["state"] == "finished"
    assert row["spider"] == "s"
    assert row["ts"] == row["finished_time"]
    assert row["pending_time"] <= row["finished_time"]
    assert 0 <= row["elapsed"] < 60_000


def test_list_state(proj: HsProject) -> None:
    done = push_finished(proj, "s", 1)
    pending = proj.jobq.push("s")["key"]
    running = proj.jobq.push("s", state="running")["key"]
    assert keys(proj.jobq.list(state="pending")) == [pending]
    assert keys(proj.jobq.list(state="running")) == [running]
    assert keys(proj.jobq.list(state=["pending", "running", "finished"])) == [
        running, pending, *done
    ]


def test_list_startts_endts(proj: HsProject) -> None:
    push_finished(proj, "s", 5)
    rows = list(proj.jobq.list())
    ts = [r["ts"] for r in rows][::-1]  # oldest first
    assert len(set(ts)) == 5
    got = list(proj.jobq.list(startts=ts[1], endts=ts[3]))
    assert [r["ts"] for r in got] == [ts[2], ts[1]]  # startts inclusive, endts exclusive
    assert len(list(proj.jobq.list(startts=ts[4]))) == 1
    assert len(list(proj.jobq.list(endts=ts[0]))) == 0


def test_list_stop_returns_jobs_after_the_key(proj: HsProject) -> None:
    done = push_finished(proj, "s", 4)
    assert keys(proj.jobq.list(stop=done[1])) == [done[3], done[2]]
    assert keys(proj.jobq.list(stop=done[3])) == []
    # the cursor still works once the stop job has been deleted
    list(proj.jobq.delete(done[1]))
    assert keys(proj.jobq.list(stop=done[1])) == [done[3], done[2]]


def test_list_count_and_start(proj: HsProject) -> None:
    done = push_finished(proj, "s", 4)[::-1]
    assert keys(proj.jobq.list(count=2)) == done[:2]
    assert keys(proj.jobq.list(count=2, start=1)) == done[1:3]


def test_list_spider(proj: HsProject) -> None:
    a = push_finished(proj, "a", 2)
    b = push_finished(proj, "b", 1)
    assert keys(proj.jobq.list(spider="a")) == a[::-1]
    assert keys(proj.jobq.list(spider=["a", "b"])) == [b[0], a[1], a[0]]
    assert keys(proj.jobq.list(spider="nobody")) == []


def test_list_has_tag_lacks_tag(proj: HsProject) -> None:
    t1 = push_finished(proj, "s", 1, tags=["t1"])[0]
    t2 = push_finished(proj, "s", 1, tags=["t2"])[0]
    both = push_finished(proj, "s", 1, tags=["t1", "t2"])[0]
    none = push_finished(proj, "s", 1)[0]
    assert keys(proj.jobq.list(has_tag="t1")) == [both, t1]
    assert keys(proj.jobq.list(has_tag=["t1", "t2"])) == [both, t2, t1]
    assert keys(proj.jobq.list(lacks_tag="t1")) == [none, t2]
    assert keys(proj.jobq.list(lacks_tag=["t1", "t2"])) == [none]
    assert keys(proj.jobq.list(has_tag="t2", lacks_tag="t1")) == [t2]


def test_list_legacy_filter(proj: HsProject) -> None:
    a = push_finished(proj, "a", 1, tags=["t1"])[0]
    b = proj.jobq.push("b", tags=["t2"])["key"]
    ok = proj.jobq.push("a")["key"]
    list(proj.jobq.finish(ok, close_reason="finished"))

    def legacy(*triples: list[Any]) -> list[str]:
        return keys(proj.jobq.list(filter=[json.dumps(t) for t in triples]))

    assert legacy(["state", "=", ["pending"]]) == [b]
    assert legacy(["state", "=", ["pending", "finished"]]) == [ok, b, a]
    assert legacy(["spider", "=", ["a"]]) == [ok, a]
    assert legacy(["tags", "haselement", ["t1"]]) == [a]
    assert legacy(["tags", "hasnotelement", ["t1"]]) == [ok]
    assert legacy(["state", "=", ["pending", "finished"]],
                  ["tags", "hasnotelement", ["t1"]]) == [ok, b]
    assert legacy(["close_reason", "=", ["finished"]]) == [ok]
    # another close reason: the client sends it as is and the server filters
    list(proj.jobq.finish(b, close_reason="cancelled"))
    assert legacy(["close_reason", "=", ["cancelled"]]) == [b]


# -- summary -----------------------------------------------------------------------------


def test_summary_project_and_spider(proj: HsProject) -> None:
    done = push_finished(proj, "a", 1)
    pa = proj.jobq.push("a")["key"]
    pb = proj.jobq.push("b", tags=["x"])["key"]
    run = proj.jobq.push("b", state="running")["key"]
    queues = proj.jobq.summary()
    assert [(q["name"], q["count"], keys(q["summary"])) for q in queues] == [
        ("pending", 2, [pb, pa]), ("running", 1, [run]), ("finished", 1, done)
    ]
    assert queues[0]["summary"][0]["tags"] == ["x"]
    one = proj.jobq.summary("pending")
    assert (one["name"], one["count"], keys(one["summary"])) == ("pending", 2, [pb, pa])
    spider_b = proj.ids.spider("b")
    by_spider = proj.jobq.summary(spiderid=spider_b)
    assert [(q["name"], q["count"]) for q in by_spider] == [
        ("pending", 1), ("running", 1), ("finished", 0)
    ]
    assert keys(proj.jobq.summary("running", spiderid=spider_b)["summary"]) == [run]


def test_summary_count_start_jobmeta(proj: HsProject) -> None:
    made = [proj.jobq.push("s", note=i)["key"] for i in range(7)]
    newest_first = made[::-1]
    assert keys(proj.jobq.summary("pending")["summary"]) == newest_first[:5]  # 5 by default
    assert keys(proj.jobq.summary("pending", count=2, start=1)["summary"]) == newest_first[1:3]
    rows = proj.jobq.summary("pending", count=1, jobmeta=["note"])["summary"]
    assert rows[0]["note"] == 6
    assert "spider" not in rows[0]


# -- start -------------------------------------------------------------------------------


def test_start_takes_highest_priority_then_oldest(proj: HsProject) -> None:
    order = [("a", 2), ("b", 4), ("c", 2), ("d", 0), ("e", 4)]
    pushed = {name: proj.jobq.push(name, priority=prio)["key"] for name, prio in order}
    started = []
    for _ in order:
        job = proj.jobq.start(worker="w1")
        assert job["state"] == "running"
        assert isinstance(job["auth"], str)
        assert job["started_by"] == "admin"
        started.append(job["key"])
    assert started == [pushed[n] for n in ("b", "e", "a", "c", "d")]
    assert proj.jobq.start() is None
    meta = proj.get_job(pushed["b"]).metadata
    assert meta["state"] == "running"
    assert meta["worker"] == "w1"
    assert isinstance(meta["running_time"], int)


def test_start_with_botgroup(
    proj: HsProject, project: int, http: httpx.Client
) -> None:
    group = f"bg{project}"
    proj.settings["botgroups"] = [group]
    proj.settings.save()
    first = proj.jobq.push("s")["key"]
    second = proj.jobq.push("s")["key"]
    assert proj.jobq.start(botgroup=f"other{project}") is None
    assert proj.jobq.start(botgroup=group)["key"] == first
    assert http.post(f"/botgroups/{group}/max_running", content=b"1").json() is None
    try:
        assert proj.jobq.start(botgroup=group) is None  # one running already
        assert proj.jobq.start() is None
        assert proj.jobsummary()["has_capacity"] is False
        list(proj.jobq.finish(first))
        assert proj.jobsummary()["has_capacity"] is True
        assert proj.jobq.start(botgroup=group)["key"] == second
    finally:
        http.delete(f"/botgroups/{group}")


# -- update, finish, delete, cancel ------------------------------------------------------


def test_update_finish_delete(proj: HsProject) -> None:
    key = proj.jobq.push("s")["key"]
    assert list(proj.jobq.update(key, state="running", note="x")) == [
        {"key": key, "prevstate": "pending"}
    ]
    assert list(proj.jobq.finish(key, close_reason="finished", items=3)) == [
        {"key": key, "prevstate": "running"}
    ]
    meta = proj.get_job(key).metadata
    assert (meta["state"], meta["note"], meta["close_reason"], meta["items"]) == (
        "finished", "x", "finished", 3
    )
    assert meta["completed_by"] == "admin"
    assert meta["running_time"] <= meta["finished_time"]
    # to the same state again: neither its time nor its place in the queue changes
    later = push_finished(proj, "s", 1)[0]
    list(proj.jobq.finish(key, note="y"))
    again = proj.get_job(key).metadata
    assert (again["note"], again["finished_time"]) == ("y", meta["finished_time"])
    assert keys(proj.jobq.list()) == [later, key]
    assert list(proj.jobq.delete(later)) == [{"key": later, "prevstate": "finished"}]
    assert list(proj.jobq.delete(key)) == [{"key": key, "prevstate": "finished"}]
    meta = proj.get_job(key).metadata
    assert (meta["state"], meta["deleted_by"]) == ("deleted", "admin")
    assert meta["finished_time"] <= meta["deleted_time"]
    assert list(proj.jobq.list(state=["pending", "running", "finished"])) == []
    assert [q["count"] for q in proj.jobq.summary()] == [0, 0, 0]


def test_update_by_spider_key_and_unknown_job(proj: HsProject, project: int) -> None:
    a1 = proj.jobq.push("a")["key"]
    a2 = proj.jobq.push("a", state="running")["key"]
    proj.jobq.push("b")
    sid = proj.ids.spider("a")
    assert list(proj.jobq.finish(f"{project}/{sid}")) == [
        {"key": a1, "prevstate": "pending"}, {"key": a2, "prevstate": "running"}
    ]
    assert list(proj.jobq.update(f"{project}/{sid}/99", state="finished")) == []


def test_start_given_job_moves_it_to_running(proj: HsProject) -> None:
    key = proj.jobq.push("s")["key"]
    assert list(proj.jobq.start(key, worker="w2")) == [{"key": key, "prevstate": "pending"}]
    assert proj.get_job(key).metadata["state"] == "running"


def test_request_cancel(proj: HsProject) -> None:
    pending = proj.push_job("s")
    running = proj.jobq.push("s", state="running")["key"]
    pending.request_cancel()
    proj.jobq.request_cancel(proj.get_job(running))
    meta = proj.get_job(pending.key).metadata
    assert (meta["state"], meta["close_reason"]) == ("finished", "cancelled")
    meta = proj.get_job(running).metadata
    assert meta["state"] == "running"
    assert isinstance(meta["cancel_requested_time"], int)


def test_jobsummary(proj: HsProject) -> None:
    a = proj.jobq.push("s", note="a", tags=["t"])["key"]
    b = proj.jobq.push("s", state="running")["key"]
    rows = list(proj.jobq.jobsummary([a, b, f"{proj.projectid}/9/9"], ["note", "priority"]))
    assert keys(rows) == [a, b]
    assert rows[0]["note"] == "a" and rows[0]["priority"] == 2 and rows[0]["state"] == "pending"
    assert rows[0]["tags"] == ["t"]
    assert "note" not in rows[1] and rows[1]["state"] == "running"
    with pytest.raises(TypeError):
        proj.jobq.jobsummary(a, ["note"])  # the client insists on a list


# -- job metadata ------------------------------------------------------------------------


def test_metadata_get_set_save_expire_delete(proj: HsProject, hs: HubstorageClient) -> None:
    key = proj.jobq.push("s", keep=1, drop=2)["key"]
    job = hs.get_job(key)
    assert job.metadata["keep"] == 1
    job.metadata["new"] = {"deep": [1, 2]}
    job.metadata["state"] = "finished"  # the client leaves `state` out of save()
    del job.metadata["drop"]
    job.metadata.save()
    job.metadata.expire()
    assert job.metadata["new"] == {"deep": [1, 2]}
    assert job.metadata["state"] == "pending"
    assert "drop" not in job.metadata
    fresh = dict(hs.get_job(key).metadata)
    assert fresh["new"] == {"deep": [1, 2]} and "drop" not in fresh and fresh["keep"] == 1


def test_update_metadata(proj: HsProject) -> None:
    job = proj.push_job("s")
    job.update_metadata(note="n", count=3)
    assert (job.metadata["note"], job.metadata["count"]) == ("n", 3)
    job.update_metadata({"note": "m"})
    assert proj.get_job(job.key).metadata["note"] == "m"


def test_purged(proj: HsProject) -> None:
    job = proj.push_job("s")
    assert job.metadata["state"] == "pending"
    job.purged()
    assert job.metadata["state"] == "deleted"  # expired, so read again
    assert list(proj.jobq.list(state="pending")) == []


# -- spiders, settings, project summaries, server time ------------------------------------


def test_ids_spider(proj: HsProject) -> None:
    assert proj.ids.spider("nobody") is None
    assert proj.ids.spider("first", create=1) == 1
    assert proj.ids.spider("second", create=1) == 2
    assert proj.ids.spider("first") == 1
    assert proj.ids.spider("first", create=1) == 1
    assert proj.push_job("second").key == f"{proj.projectid}/2/1"


def test_settings(proj: HsProject, hs: HubstorageClient) -> None:
    assert dict(proj.settings) == {}
    proj.settings["a"] = 1
    proj.settings["b"] = {"x": [1]}
    proj.settings.save()
    again = hs.get_project(proj.projectid).settings
    assert dict(again) == {"a": 1, "b": {"x": [1]}}
    del again["a"]
    again.save()
    proj.settings.expire()
    assert dict(proj.settings) == {"b": {"x": [1]}}


def test_project_jobsummary(proj: HsProject, hs: HubstorageClient, project: int) -> None:
    push_finished(proj, "s", 1)
    proj.jobq.push("s", units=3)
    proj.jobq.push("s")
    proj.jobq.push("s", state="running", units=2)
    summary = proj.jobsummary()
    # as hosted: this one adds the units of the running jobs and the most units of a
    # pending job; the rows of jobsummaries do not
    counts = {"project": project, "pending": 2, "running": 1, "finished": 1,
              "has_capacity": True}
    assert summary == {**counts, "running_units_count": 2, "pending_units_max": 3}
    every = hs.projects.jobsummaries()
    assert [s for s in every if s["project"] == project] == [counts]


def test_lastjobsummary(proj: HsProject) -> None:
    a = push_finished(proj, "a", 2)
    list(proj.jobq.finish(a[1], close_reason="finished"))
    b = proj.jobq.push("b")["key"]
    proj.ids.spider("no-jobs", create=1)
    rows = list(proj.spiders.lastjobsummary())
    assert keys(rows) == [a[1], b]
    assert rows[0]["close_reason"] == "finished"
    assert rows[0]["spider"] == "a"
    assert keys(proj.spiders.lastjobsummary(proj.ids.spider("b"))) == [b]


def test_server_timestamp(hs: HubstorageClient) -> None:
    before = int(time.time() * 1000)
    ts = hs.server_timestamp()
    after = int(time.time() * 1000)
    assert isinstance(ts, int)
    assert before - 1000 <= ts <= after + 1000


# -- ScrapinghubClient ---------------------------------------------------------------------


def test_sc_jobs_list_iter_count_summary(
    sc: ScrapinghubClient, proj: HsProject, project: int
) -> None:
    done = push_finished(proj, "a", 2, tags=["t"])
    pending = proj.jobq.push("b", note="n")["key"]
    jobs = sc.get_project(project).jobs
    assert keys(jobs.list()) == done[::-1]
    assert keys(jobs.iter(state="pending")) == [pending]
    assert keys(jobs.list(count=1)) == [done[1]]
    assert keys(jobs.list(start=1)) == [done[0]]
    assert keys(jobs.list(spider="a", has_tag="t")) == done[::-1]
    assert keys(jobs.list(lacks_tag="t", state=["pending", "finished"])) == [pending]
    rows = jobs.list(state="pending", meta=["note"])
    assert rows[0]["note"] == "n" and "spider" not in rows[0]
    assert jobs.count() == 2
    assert jobs.count(state=["pending", "finished"]) == 3
    assert jobs.count(spider="b", state="pending") == 1
    assert jobs.count(has_tag="t") == 2
    assert [q["count"] for q in jobs.summary()] == [1, 0, 2]
    assert jobs.summary("pending")["count"] == 1
    assert [q["count"] for q in jobs.summary(spider="a")] == [0, 0, 2]
    with pytest.raises(sh_errors.NotFound):
        jobs.summary(spider="nobody")


def test_sc_jobs_cancel_and_get(sc: ScrapinghubClient, proj: HsProject, project: int) -> None:
    a = proj.jobq.push("s")["key"]
    b = proj.jobq.push("s", state="running")["key"]
    done = push_finished(proj, "s", 1)[0]
    jobs = sc.get_project(project).jobs
    assert jobs.cancel(keys=[a, b, done]) == {"count": 2}
    assert jobs.get(a).metadata.get("close_reason") == "cancelled"
    assert jobs.get(a).metadata.get("state") == "finished"
    assert jobs.get(b).metadata.get("state") == "running"
    assert "cancel_requested_time" in dict(jobs.get(b).metadata.iter())
    assert jobs.cancel(keys=[f"{project}/9/9"]) == {"count": 0}
    oldest = proj.jobq.push("s")["key"]
    proj.jobq.push("s")
    assert list(jobs.cancel(count=1)) == [{"count": 1}]  # admins only: the oldest pending
    assert jobs.get(oldest).metadata.get("close_reason") == "cancelled"
    assert jobs.count(state="pending") == 1
    assert sc.get_job(a).key == a


def test_sc_job_metadata(sc: ScrapinghubClient, proj: HsProject) -> None:
    key = proj.jobq.push("s", one=1)["key"]
    meta = sc.get_job(key).metadata
    assert meta.get("one") == 1
    meta.set("two", {"x": [2]})
    assert meta.get("two") == {"x": [2]}
    meta.update({"three": 3, "one": 11})
    items = dict(meta.iter())
    assert (items["one"], items["two"], items["three"]) == (11, {"x": [2]}, 3)
    assert ("state", "pending") in meta.list()
    meta.delete("three")
    with pytest.raises(sh_errors.NotFound):
        meta.get("three")
    meta.set("state", "finished")  # states change through jobq only
    assert meta.get("state") == "pending"


def test_sc_job_state_changes(sc: ScrapinghubClient, proj: HsProject) -> None:
    key = proj.jobq.push("s")["key"]
    job = sc.get_job(key)
    assert job.start(worker="w") == "pending"
    job.cancel()
    assert job.metadata.get("state") == "running"
    assert isinstance(job.metadata.get("cancel_requested_time"), int)
    assert job.update("running", note="x") == "running"
    assert job.finish(close_reason="cancelled") == "running"
    assert job.metadata.get("close_reason") == "cancelled"
    assert job.delete() == "finished"
    assert job.metadata.get("state") == "deleted"
    missing = sc.get_job(f"{proj.projectid}/1/99")
    with pytest.raises(sh_errors.NotFound):
        missing.finish()


def test_sc_iter_last(sc: ScrapinghubClient, proj: HsProject, project: int) -> None:
    a = push_finished(proj, "a", 2)
    b = proj.jobq.push("b")["key"]
    jobs = sc.get_project(project).jobs
    assert keys(jobs.iter_last()) == [a[1], b]
    assert keys(jobs.iter_last(spider="b")) == [b]
    assert keys(sc.get_project(project).spiders.get("a").jobs.iter_last()) == [a[1]]
    # paging over spiders (spider id order)
    assert keys(jobs.iter_last(count=1)) == [a[1]]
    assert keys(jobs.iter_last(start=1)) == [b]
    assert keys(jobs.iter_last(start_after=f"{project}/1")) == [b]
    assert keys(jobs.iter_last(start_after=f"{project}/2")) == []


# -- credentials ------------------------------------------------------------------------


def test_job_token_reaches_its_job_only(
    proj: HsProject, shared_server: helpers.Server
) -> None:
    other = proj.jobq.push("s")["key"]
    proj.jobq.push("s", priority=4)
    started = proj.jobq.start()
    assert "auth" not in dict(proj.get_job(started["key"]).metadata)
    worker = HubstorageClient(auth=(started["key"], started["auth"]),
                              endpoint=shared_server.url)
    try:
        job = worker.get_job(started["key"])
        assert job.metadata["state"] == "running"
        job.update_metadata(progress=50)
        assert proj.get_job(started["key"]).metadata["progress"] == 50
        wproj = worker.get_project(proj.projectid)
        forbidden = [
            lambda: dict(worker.get_job(other).metadata),
            lambda: worker.get_job(other).update_metadata(x=1),
            lambda: list(wproj.jobq.list()),
            lambda: wproj.jobq.push("s"),
            lambda: wproj.jobq.start(),
            lambda: list(wproj.jobq.finish(other)),
            lambda: wproj.jobq.summary(),
            lambda: wproj.ids.spider("s"),
            lambda: dict(wproj.settings),
            lambda: wproj.jobsummary(),
        ]
        for call in forbidden:
            with pytest.raises(requests.HTTPError) as info:
                call()
            assert info.value.response.status_code == 403
        assert proj.get_job(other).metadata.get("x") is None
        # the job itself is the token's to act on, through jobq too
        assert list(wproj.jobq.finish(started["key"], close_reason="finished")) == [
            {"key": started["key"], "prevstate": "running"}]
    finally:
        worker.session.close()


def test_bad_credentials_are_refused(shared_server: helpers.Server, project: int) -> None:
    for auth in ("wrong-key", (f"{project}/1/1", "not.a.token")):
        client = HubstorageClient(auth=auth, endpoint=shared_server.url)
        try:
            with pytest.raises(requests.HTTPError) as info:
                list(client.get_project(project).jobq.list())
            assert info.value.response.status_code == 401
        finally:
            client.session.close()
    sc = ScrapinghubClient("wrong-key", endpoint=shared_server.url)
    try:
        with pytest.raises(sh_errors.Unauthorized):
            sc.get_project(project).jobs.count()
    finally:
        sc._hsclient.session.close()
        sc._connection._session.close()


def test_hex_encoded_job_auth(proj: HsProject, shared_server: helpers.Server) -> None:
    """SHUB_JOBAUTH style: hex of `jobkey:token`, which the client decodes itself."""
    proj.jobq.push("s")
    started = proj.jobq.start()
    encoded = f"{started['key']}:{started['auth']}".encode().hex()
    with pytest.warns(UserWarning, match="authentication only via apikey"):
        sc = ScrapinghubClient(encoded, endpoint=shared_server.url)
    try:
        meta = sc.get_job(started["key"]).metadata
        assert meta.get("state") == "running"
        meta.set("seen", True)
        assert proj.get_job(started["key"]).metadata["seen"] is True
        with pytest.raises(sh_errors.Forbidden):
            sc.get_project(proj.projectid).jobs.count()
    finally:
        sc._hsclient.session.close()
        sc._connection._session.close()
