"""Rate buckets: time comes from the injected clock, and many callers evict the least
recently seen buckets one by one (never all of them at once)."""

from __future__ import annotations

from jobq.domain.clock import ManualClock
from jobq.http.ratelimit import TokenBuckets


def test_buckets_refill_as_the_injected_clock_moves() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)
    assert [buckets.wait_time("k") for _ in range(2)] == [0.0, 0.0]
    assert buckets.wait_time("k") == 0.5
    assert buckets.peek("k") == 0.5  # peeking takes nothing
    clock.advance(0.5)
    assert buckets.peek("k") == 0.0
    assert buckets.wait_time("k") == 0.0
    assert buckets.wait_time("k") > 0


def test_a_flood_of_new_keys_does_not_refill_a_busy_bucket() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock, max_buckets=3)
    assert buckets.wait_time("busy") == 0.0
    for n in range(10):
        assert buckets.wait_time("busy") > 0  # still empty: it is the most recently used
        buckets.wait_time(f"other-{n}")
    assert buckets.wait_time("busy") > 0
