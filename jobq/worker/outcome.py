"""The close_reason a job ends with (RUNNER.md, "Outcomes"). Pure rules."""

from __future__ import annotations

FINISHED = "finished"
NO_REASON = "no_reason"
FAILED = "failed"
CANCELLED = "cancelled"
SHUTDOWN = "shutdown"


def close_reason(fin: str | None, returncode: int, stop: str | None) -> str:
    """- `stop`: why the worker stopped the job (a cancel, the worker's shutdown): that is
      the outcome whatever Scrapy says of the SIGTERM it got (`shutdown`);
    - else the reason of the job's `FIN` (`finished`, `closespider_itemcount`,
      `memusage_exceeded`, ...);
    - else `no_reason` for an exit 0 (a script job) and `failed` for anything else (a
      crash, a spider that raised at start, a kill by a signal)."""
    if stop is not None:
        return stop
    if fin:
        return fin
    return NO_REASON if returncode == 0 else FAILED
