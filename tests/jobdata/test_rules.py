"""The pure rules of job data (jobq.domain.records_data): where a batch lands, record
keys, filters, stats, inflating bodies, and chunking (jobq.storage.chunks)."""

from __future__ import annotations

import gzip

import pytest

from jobq import errors
from jobq.domain.jobs import JobKey, State
from jobq.domain.records_data import (
    MAX_COUNTED,
    Kind,
    Placement,
    Stats,
    cap_of,
    inflate,
    parse_batch,
    parse_record_key,
    place,
)
from jobq.domain.records_query import parse_filter
from jobq.storage import chunks

JOB = JobKey(53, 1, 7)


@pytest.mark.parametrize(("next_index", "start", "n", "cap", "placed"), [
    (0, 0, 5, None, Placement(0, 5, 0)),
    (5, None, 3, None, Placement(0, 3, 5)),
    (5, 0, 5, None, Placement(5, 5, 5)),       # a retry of a stored batch: nothing
    (5, 3, 4, None, Placement(2, 4, 5)),       # overlapping: the new tail only
    (3, 3, 4, 5, Placement(0, 2, 3, capped=2)),
    (5, 5, 1, 5, Placement(0, 0, 5, capped=1)),
])
def test_place(next_index: int, start: int | None, n: int, cap: int | None,
               placed: Placement) -> None:
    assert place(JOB, Kind.ITEMS, State.RUNNING, False, next_index, start, n, cap) == placed


def test_place_refuses() -> None:
    with pytest.raises(errors.BadRequest, match="start: 4 does not match the next index 2"):
        place(JOB, Kind.ITEMS, State.RUNNING, False, 2, 4, 1, None)
    with pytest.raises(errors.Conflict, match="finished"):
        place(JOB, Kind.LOGS, State.FINISHED, False, 0, 0, 1, None)
    assert place(JOB, Kind.LOGS, State.FINISHED, True, 0, 0, 1, None).stored == 1
    with pytest.raises(errors.Conflict):
        place(JOB, Kind.LOGS, State.DELETED, True, 0, 0, 1, None)
    for state in (None, State.REMOVED):
        with pytest.raises(errors.NotFound):
            place(JOB, Kind.ITEMS, state, True, 0, 0, 1, None)


def test_record_keys() -> None:
    assert parse_record_key("53/1/7/0", JOB, "start") == 0
    assert parse_record_key("53/1/7/12", JOB, "start") == 12
    for bad in ("53/1/7", "53/1/7/01", "53/1/7/-1", "53/1/8/1", "x"):
        with pytest.raises(errors.BadRequest, match="start"):
            parse_record_key(bad, JOB, "start")


def test_filters() -> None:
    record = {"level": 30, "message": "A simple thing", "tags": ["a", "b"]}
    assert parse_filter('["level", ">=", [30]]')(record)
    assert not parse_filter('["level", ">", [30]]')(record)
    assert parse_filter('["level", "=", [10, 30]]')(record)
    assert parse_filter('["message", "contains", ["simple"]]')(record)
    assert parse_filter('["message", "icontains", ["SIMPLE"]]')(record)
    assert parse_filter('["tags", "haselement", ["b"]]')(record)
    assert parse_filter('["tags", "hasnotelement", ["c"]]')(record)
    assert parse_filter('["missing", "!=", [1]]')(record)
    assert not parse_filter('["missing", "=", [1]]')(record)
    assert parse_filter('["level", "exists", []]')(record)
    assert not parse_filter('["message", ">", [3]]')(record)  # str against int: no match
    for bad in ("[", '["a", "=", 1]', '["a", "like", ["x"]]', '["a", "contains", [1]]', "7"):
        with pytest.raises(errors.BadRequest, match="filter"):
            parse_filter(bad)


def test_stats_count_at_most_so_many_names() -> None:
    total = Stats()
    total.merge(Stats(1, 10, {f"f{i}": 1 for i in range(MAX_COUNTED + 50)}))
    total.merge(Stats(1, 10, {"f0": 1, "new": 1}))
    assert len(total.counts) == MAX_COUNTED and total.counts["f0"] == 2
    assert total.input_values == 2 and total.input_bytes == 20


def test_parse_batch_and_stats() -> None:
    batch = parse_batch(Kind.LOGS, b'{"level": 20}\n\n {"level": 40, "_key": "x"} \n{}\n', 0)
    assert batch.lines == [b'{"level": 20}', b'{"level":40}', b"{}"]
    assert batch.stats().counts == {"20": 1, "40": 1}
    assert batch.stats(1).input_values == 2


def test_inflate() -> None:
    assert inflate(gzip.compress(b"a") + gzip.compress(b"b"), "gzip", 100) == b"ab"
    with pytest.raises(errors.PayloadTooLarge):
        inflate(gzip.compress(b"x" * 1000), "gzip", 999)
    with pytest.raises(errors.BadRequest, match="not gzip"):
        inflate(b"plain", "gzip", 100)
    assert inflate(b"plain", None, 100) == b"plain"


def test_caps() -> None:
    assert cap_of(Kind.ITEMS, {}) is None
    assert cap_of(Kind.LOGS, {}) == 10_000_000
    assert cap_of(Kind.ITEMS, {"job_items_max": 5}) == 5
    assert cap_of(Kind.LOGS, {"job_logs_max": 0}) is None
    with pytest.raises(errors.BadRequest, match="job_items_max"):
        cap_of(Kind.ITEMS, {"job_items_max": "many"})


def test_chunks_split_by_count_and_size() -> None:
    small = [b'{"i":%d}' % i for i in range(2500)]
    assert [c.count for c in chunks.split(small)] == [1000, 1000, 500]
    big = [b"x" * 100_000] * 5
    split = chunks.split(big)
    assert [c.count for c in split] == [2, 2, 1]
    assert [c.offset for c in split] == [0, 2, 4]
    assert chunks.decompress(split[1].data) == big[2:4]
