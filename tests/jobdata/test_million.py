"""A crawl-sized job: 1,000,000 small items written by the official client's batch
writer, read back in order through the client (msgpack), checked by count and checksum."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest
from scrapinghub import HubstorageClient, ScrapinghubClient

from tests import helpers
from tests.jobdata.conftest import finish, running_job

pytestmark = pytest.mark.slow

N = 1_000_000


def item(i: int) -> dict[str, object]:
    return {"n": i, "url": f"https://example.com/p/{i}", "price": i % 997}


def test_a_million_items_in_order(
    data_server: helpers.Server, http: httpx.Client, project: int
) -> None:
    key, token = running_job(http, project)
    started = time.monotonic()
    writer_client = HubstorageClient(auth=(key, token), endpoint=data_server.url)
    try:
        items = writer_client.get_job(key).items
        for i in range(N):
            items.write(item(i))
        items.close()
    finally:
        writer_client.close()
    written = time.monotonic()
    finish(http, project, key)

    expected = hashlib.sha256()
    for i in range(N):
        expected.update(repr(sorted(item(i).items())).encode())
    reader = ScrapinghubClient(data_server.admin_key, endpoint=data_server.url)
    got = hashlib.sha256()
    count = 0
    try:
        for i, read in enumerate(reader.get_job(key).items.iter()):
            assert read["n"] == i, f"item {i} came out of order"
            got.update(repr(sorted(read.items())).encode())
            count += 1
    finally:
        reader.close()
    read_done = time.monotonic()
    assert count == N
    assert got.hexdigest() == expected.hexdigest()
    stats = http.get(f"/items/{key}/stats").json()
    assert stats["totals"]["input_values"] == N
    # streamed, never held whole: the server's peak memory stays far below the job's
    # ~60 MB of JSON (x3 or more as Python objects)
    assert data_server.process is not None
    status = Path(f"/proc/{data_server.process.pid}/status").read_text()
    peak_kib = int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:")))
    assert peak_kib < 150 * 1024, f"server peak RSS {peak_kib} KiB"
    print(f"\n{data_server.db.split(':')[0]}: wrote {N} items in {written - started:.1f} s,"
          f" read them in {read_done - written:.1f} s")
