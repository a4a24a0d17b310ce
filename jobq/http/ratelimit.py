"""Per-caller rate limits: token buckets, keyed by the authenticated principal (requests
without valid credentials share one bucket per client address), kept in a bounded LRU
map so that many callers evict the least recently seen buckets, never all of them."""

from __future__ import annotations

from collections.abc import Hashable

from jobq.domain.clock import SYSTEM, Clock

#: most buckets kept at once; past it the least recently used one is forgotten (a
#: forgotten bucket starts full again, which only ever errs towards letting a request in)
MAX_BUCKETS = 100_000


class TokenBuckets:
    """`rate` requests a second per key, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Clock = SYSTEM,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max = max_buckets
        # a dict in order of use (a bucket moves to the end when used; the first one is
        # the least recently used): two dict operations a request
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        buckets = self._buckets
        if buckets.pop(key, None) is None and len(buckets) >= self._max:
            del buckets[next(iter(buckets))]
        buckets[key] = (tokens, now)

    def wait_time(self, key: Hashable) -> float:
        """0 when a request may go now (and take a token), else seconds until one may."""
        now = self._clock.monotonic()
        tokens = self._tokens(key, now)
        if tokens < 1:
            self._store(key, tokens, now)
            return (1 - tokens) / self.rate
        self._store(key, tokens - 1, now)
        return 0.0

    def peek(self, key: Hashable) -> float:
        """As `wait_time`, without taking a token."""
        tokens = self._tokens(key, self._clock.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate
