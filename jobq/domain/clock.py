"""Time, injected. Every rule that reads the clock (positions, job tokens, rate buckets,
leases, schedules) takes a `Clock`, so tests move time forward instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the epoch (may step back)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back (for intervals and timeouts)."""


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to: for tests of time-dependent rules."""

    def __init__(self, now_ms: int = 1_700_000_000_000, monotonic: float = 1000.0) -> None:
        self._now_ms = now_ms
        self._monotonic = monotonic

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._now_ms += round(seconds * 1000)
        self._monotonic += seconds

    def set_wall(self, now_ms: int) -> None:
        """Set the wall clock alone (it may step back, as NTP can make it)."""
        self._now_ms = now_ms


SYSTEM = SystemClock()
