"""A `Storage` wrapper that times every operation and counts pushes, claims and
finishes for /metrics, so neither the backends nor the core know about Prometheus."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from jobq import errors, metrics
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobUpdate, ListQuery, Pushed, Updated


def _finished(updates: Sequence[JobUpdate], done: Sequence[Updated]) -> int:
    target = {str(u.target): u.state for u in updates}
    count = 0
    for item in done:
        key = item.key
        state = target.get(str(key), target.get(f"{key.project}/{key.spider}"))
        if state is State.FINISHED and item.prevstate is not State.FINISHED:
            count += 1
    return count


def _count(operation: str, args: tuple[Any, ...], result: Any) -> None:
    if operation == "push":
        pushed: list[Pushed] = result
        metrics.JOBS_PUSHED.inc(sum(1 for p in pushed if p.key is not None))
    elif operation == "start_job" and result is not None:
        metrics.JOBS_CLAIMED.inc()
    elif operation == "update":
        metrics.JOBS_FINISHED.inc(_finished(args[1], result))


class InstrumentedStorage:
    """Behaves as the storage it wraps (typed as `Storage` where it is used)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._cancel = _timed("cancel", getattr(inner, "cancel"))  # noqa: B009

    async def cancel(
        self, project: int, keys: Sequence[JobKey] | None, limit: int | None, actor: str
    ) -> int:
        """Cancelling a pending job finishes it: count those. `cancel` answers how many
        were pending *or running*, so for named jobs count the pending ones first (a job
        claimed between the two reads is counted when its worker finishes it, too: rare
        enough for a metric)."""
        pending: int | None = None
        if keys is not None:
            query = ListQuery(states=(State.PENDING,), keys=tuple(keys), count=None)
            pending = await self.count_jobs(project, query)
        cancelled: int = await self._cancel(project, keys, limit, actor)
        metrics.JOBS_FINISHED.inc(cancelled if pending is None else min(pending, cancelled))
        return cancelled

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        timed = _timed(name, attr)
        setattr(self, name, timed)  # built once per operation
        return timed


def _timed(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    seconds = metrics.DB_SECONDS.labels(operation)
    failures = metrics.DB_ERRORS.labels(operation)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = await call(*args, **kwargs)
        except errors.StorageError:
            failures.inc()
            raise
        finally:
            seconds.observe(time.perf_counter() - start)
        _count(operation, args, result)
        return result

    return timed


