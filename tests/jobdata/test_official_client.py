"""The official `scrapinghub` client (2.9.0), unchanged but for `endpoint=`, writing a
job's items, logs and requests with its batch writer (under the job's token, as a
running crawl does) and reading them back, through JSON and msgpack, on both backends."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from scrapinghub import HubstorageClient, ScrapinghubClient

from tests import helpers
from tests.jobdata.conftest import finish, running_job

N_ITEMS = 2345  # more than two of the writer's batches, several chunks


@pytest.fixture
def crawled(data_server: helpers.Server, http: httpx.Client, project: int) -> Iterator[str]:
    """A job that wrote items, log lines and requests through the client's batch writer,
    authenticated by its own job token, then finished."""
    key, token = running_job(http, project)
    job_client = HubstorageClient(auth=(key, token), endpoint=data_server.url)
    try:
        job = job_client.get_job(key)
        for i in range(N_ITEMS):
            job.items.write({"n": i, "name": f"item {i}", "tags": ["even" if i % 2 == 0
                                                                      else "odd"]})
        job.logs.info("Spider opened")
        job.logs.debug("Crawled (200)")
        job.logs.warning("a simple warning")
        job.logs.error("something failed")
        for i in range(10):
            job.requests.add(f"https://example.com/{i}", 200, "GET", 100 + i, None, 7, 1000 + i)
        job.close_writers()
    finally:
        job_client.close()
    finish(http, project, key)
    yield key


def test_items_read_back_through_both_clients_in_order(
    crawled: str, sc: ScrapinghubClient, data_server: helpers.Server
) -> None:
    expected = [{"n": i, "name": f"item {i}", "tags": ["even" if i % 2 == 0 else "odd"]}
                for i in range(N_ITEMS)]
    job = sc.get_job(crawled)
    assert sc._hsclient.use_msgpack, "msgpack is installed: the client reads msgpack"
    assert list(job.items.iter()) == expected
    json_client = HubstorageClient(auth=data_server.admin_key, endpoint=data_server.url,
                                   use_msgpack=False)
    try:
        # the low-level reader always asks for _key (to resume after a broken download)
        assert list(json_client.get_job(crawled).items.iter_values()) == [
            {"_key": f"{crawled}/{i}", **item} for i, item in enumerate(expected)]
        with_keys = list(json_client.get_job(crawled).items.list(meta="_key", count=2))
        assert with_keys == [{**expected[0], "_key": f"{crawled}/0"},
                             {**expected[1], "_key": f"{crawled}/1"}]
    finally:
        json_client.close()


def test_items_paging_filters_and_one_item(crawled: str, sc: ScrapinghubClient) -> None:
    job = sc.get_job(crawled)
    assert [i["n"] for i in job.items.iter(count=3, start=f"{crawled}/1000")] == [1000, 1001,
                                                                                 1002]
    assert [i["n"] for i in job.items.iter(count=2, startafter=f"{crawled}/999")] == [1000,
                                                                                    1001]
    assert [i["n"] for i in job.items.iter(index=[5, 2000])] == [5, 2000]
    assert [i["n"] for i in job.items.iter(filter=[("n", ">=", [2340])])] == list(
        range(2340, N_ITEMS))
    odd = job.items.list(filter=[("tags", "haselement", ["odd"]), ("n", "<", [6])])
    assert [i["n"] for i in odd] == [1, 3, 5]
    pages = list(job.items.list_iter(chunksize=1000))
    assert [len(p) for p in pages] == [1000, 1000, 345]
    assert pages[2][-1]["n"] == N_ITEMS - 1
    stats = job.items.stats()
    assert stats["totals"]["input_values"] == N_ITEMS
    assert stats["counts"] == {"n": N_ITEMS, "name": N_ITEMS, "tags": N_ITEMS}
    one = next(job.items._origin.apiget("7"))
    assert one == {"n": 7, "name": "item 7", "tags": ["odd"]}


def test_logs_levels_filters_and_stats(crawled: str, sc: ScrapinghubClient) -> None:
    job = sc.get_job(crawled)
    logs = job.logs.list()
    assert [(line["level"], line["message"]) for line in logs] == [
        (logging.INFO, "Spider opened"), (logging.DEBUG, "Crawled (200)"),
        (logging.WARNING, "a simple warning"), (logging.ERROR, "something failed")]
    assert all(isinstance(line["time"], int) for line in logs)
    assert [x["message"] for x in job.logs.iter(level="WARNING")] == [
        "a simple warning", "something failed"]
    assert [x["message"] for x in job.logs.iter(filter=[("message", "contains", ["simple"])])
            ] == ["a simple warning"]
    with_keys = job.logs.list(meta=["_key", "_ts"], count=1)
    assert with_keys[0]["_key"] == f"{crawled}/0" and isinstance(with_keys[0]["_ts"], int)
    stats = job.logs.stats()
    assert stats["counts"] == {"10": 1, "20": 1, "30": 1, "40": 1}
    assert stats["totals"]["input_values"] == 4


def test_requests_read_back(crawled: str, sc: ScrapinghubClient) -> None:
    requests = sc.get_job(crawled).requests.list()
    assert len(requests) == 10
    assert requests[3] == {"url": "https://example.com/3", "status": 200, "method": "GET",
                           "rs": 103, "duration": 7, "parent": None, "time": 1003, "fp": None}
    assert sc.get_job(crawled).requests.stats()["totals"]["input_values"] == 10


def test_log_append_mode_continues_at_the_stored_count(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    """A second writer in append mode asks stats for input_values and starts there."""
    key, token = running_job(http, project)
    for _ in range(2):
        client = HubstorageClient(auth=(key, token), endpoint=data_server.url)
        try:
            logs = client.get_job(key).logs
            logs.batch_append = True
            for i in range(3):
                logs.info(f"line {i}")
            logs.close()
        finally:
            client.close()
    answer = http.get(f"/logs/{key}", params={"meta": "_key"})
    rows = [json.loads(line) for line in answer.content.splitlines()]
    assert [r["message"] for r in rows] == ["line 0", "line 1", "line 2"] * 2
    assert [r["_key"] for r in rows] == [f"{key}/{i}" for i in range(6)]
