"""A `Storage` wrapper that times every operation and counts pushes, claims and
finishes for /metrics, so neither the backends nor the core know about Prometheus."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from jobq import errors, metrics
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import Cancelled, JobUpdate, Pushed, Updated


def _finished(updates: Sequence[JobUpdate], done: Sequence[Updated]) -> int:
    """How many of the updated jobs were moved to finished (a job's own line first, else
    the line of its spider)."""
    target: dict[JobKey | SpiderKey, State | None] = {u.target: u.state for u in updates}
    count = 0
    for item in done:
        if item.prevstate is State.FINISHED:
            continue
        key = item.key
        state = target[key] if key in target else target.get(SpiderKey(key.project,
                                                                        key.spider))
        if state is State.FINISHED:
            count += 1
    return count


def _pushed(args: tuple[Any, ...], result: list[Pushed]) -> None:
    metrics.JOBS_PUSHED.value += len(result) - [p.key for p in result].count(None)


def _claimed(args: tuple[Any, ...], result: Any) -> None:
    if result is not None:
        metrics.JOBS_CLAIMED.value += 1


def _updated(args: tuple[Any, ...], result: Sequence[Updated]) -> None:
    metrics.JOBS_FINISHED.value += _finished(args[1], result)


#: what a successful operation adds to the job counters, by operation
_COUNTS: dict[str, Callable[[tuple[Any, ...], Any], None]] = {
    "push": _pushed, "start_job": _claimed, "update": _updated,
}


class InstrumentedStorage:
    """Behaves as the storage it wraps (typed as `Storage` where it is used)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._cancel = _timed("cancel", getattr(inner, "cancel"))  # noqa: B009

    async def cancel(
        self, project: int, keys: Sequence[JobKey] | None, limit: int | None, actor: str
    ) -> Cancelled:
        """Cancelling a pending job finishes it: count those."""
        cancelled: Cancelled = await self._cancel(project, keys, limit, actor)
        metrics.JOBS_FINISHED.value += cancelled.finished
        return cancelled

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        timed = _timed(name, attr)
        setattr(self, name, timed)  # built once per operation
        return timed


def _timed(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    recorded = metrics.operation_metrics(operation)
    seconds = recorded.seconds
    failures = recorded.errors
    count = _COUNTS.get(operation)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = await call(*args, **kwargs)
        except errors.StorageError:
            failures.value += 1
            raise
        finally:
            seconds.observe(perf_counter() - start)
        if count is not None:
            count(args, result)
        return result

    return timed
