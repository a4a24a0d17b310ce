"""Group commit for PostgreSQL: the writes of one project that wait at the same moment
share one transaction (one lock of the project row, one COMMIT, one WAL flush).

Each project has a lane (a queue of operations). At most one batch of a project is in
flight per process, at most `max_concurrent` batches in all (different projects run in
parallel, on different pooled connections). When a write arrives and its project's lane
is idle it starts at once, alone; writes that arrive while a batch of their project is
in flight wait for it and then go together in the next batch, up to `max_batch`. So there
is no timer: batches grow exactly as fast as the database is busy. Consecutive ops that
can run as one (`Op.many`: pushes) do, so a batch costs a few statements, not a few each.

How one batch runs is the storage's business (`run_batch`, in `postgres.py`); this
module only schedules. An operation's caller is answered by `run_batch` through
`Op.future`; whatever it leaves unanswered fails here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jobq import errors

log = logging.getLogger(__name__)

#: most operations in one transaction
MAX_BATCH = 256


@dataclass(eq=False)
class Op:
    """One write operation of one project."""

    #: runs the operation inside the batch's transaction (`_pg_tx.Tx` -> result)
    fn: Callable[[Any], Awaitable[Any]]
    #: create the project row if it does not exist (push, update, cancel, settings, ...)
    ensure_project: bool = True
    #: a startjob: the batch must also lock the project's capped botgroups
    claims: bool = False
    #: runs in a late-locking batch (the project row is locked only for the final
    #: round trip; see `postgres.py`); a batch holds only late ops or only other ones
    late: bool = False
    #: (spider, job) of the jobs a late op writes by key: locked first, in key order
    keys: tuple[tuple[int, int], ...] = ()
    #: a one-trip op (`_pg_tx.OneTrip`, then `fn` is unused): a batch of them is sent in
    #: one round trip with BEGIN and COMMIT; a batch holds only ops of one kind
    one: Any = None
    #: runs consecutive ops with the same `many` together: `many(tx, [op.args, ...])`
    #: answers each of them, in order (pushes: `_pg_tx.push_many`); `fn` runs one alone
    many: Callable[[Any, list[Any]], Awaitable[list[Any]]] | None = None
    args: Any = None
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop()
                                        .create_future())

    @property
    def kind(self) -> int:
        """Ops of different kinds never share a batch: 0 plain, 1 late, 2 one-trip."""
        return 2 if self.one is not None else int(self.late)

    def resolve(self, ok: bool, value: Any) -> None:
        if self.future.done():
            return
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


class GroupCommit:
    def __init__(
        self,
        run_batch: Callable[[int, list[Op]], Awaitable[None]],
        max_concurrent: int,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run_batch = run_batch
        self._max_concurrent = max(1, max_concurrent)
        self._max_batch = max_batch
        self._lanes: dict[int, deque[Op]] = {}
        self._waiting: deque[int] = deque()  # projects with ops and no batch in flight
        self._queued: set[int] = set()
        self._busy: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches = 0
        self.operations = 0

    async def submit(self, project: int, op: Op) -> Any:
        if self._closed:
            raise errors.StorageUnavailable("the database is closed")
        self._lanes.setdefault(project, deque()).append(op)
        if project not in self._busy and project not in self._queued:
            self._queued.add(project)
            self._waiting.append(project)
            self._schedule()
        return await asyncio.shield(op.future)

    def _schedule(self) -> None:
        while len(self._tasks) < self._max_concurrent and self._waiting:
            project = self._waiting.popleft()
            self._queued.discard(project)
            lane = self._lanes.get(project)
            if not lane:
                continue
            # a batch is the longest run of ops of the same kind, in order
            batch = [lane.popleft()]
            while lane and len(batch) < self._max_batch and lane[0].kind == batch[0].kind:
                batch.append(lane.popleft())
            self._busy.add(project)
            task = asyncio.get_running_loop().create_task(self._run(project, batch))
            self._tasks.add(task)

    async def _run(self, project: int, batch: list[Op]) -> None:
        try:
            await self._run_batch(project, batch)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                failure: BaseException = errors.StorageUnavailable("the server is stopping")
            else:
                failure = exc
                if not isinstance(exc, errors.JobqError):
                    log.exception("group commit of %d operations failed", len(batch))
                    failure = errors.StorageError(f"database error: {exc}")
            for op in batch:
                op.resolve(False, failure)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.batches += 1
            self.operations += len(batch)
            self._busy.discard(project)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            if self._lanes.get(project):
                self._queued.add(project)
                self._waiting.append(project)
            else:
                self._lanes.pop(project, None)
            if not self._closed or self._waiting:
                self._schedule()

    async def close(self) -> None:
        """Finish every write already submitted, then refuse new ones."""
        self._closed = True
        while self._tasks or self._waiting:
            if not self._tasks:
                self._schedule()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
