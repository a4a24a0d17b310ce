"""The JobQ operations, between HTTP and storage: check access and input, call the
storage, shape the answers. Nothing here knows HTTP or SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from jobq import errors
from jobq.core import validation
from jobq.core.credentials import JobTokens, Principal, check_run
from jobq.domain import jobs, rows
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.jobs import JobKey, State
from jobq.domain.records import JobRecord, ListQuery, StartRequest
from jobq.storage.base import Storage

#: rows of a summary queue unless `count` says otherwise
SUMMARY_COUNT = 5
#: rows of a list unless `count` says otherwise (as the hosted service)
LIST_COUNT = 1000


def now_ms() -> int:
    return SYSTEM.now_ms()


@dataclass(slots=True)
class ListRequest:
    """What a client asked `list`, `count` or `summary` for, checked for form only."""

    states: tuple[State, ...] = (State.FINISHED,)
    spiders: tuple[str, ...] = ()
    has_tags: tuple[str, ...] = ()
    lacks_tags: tuple[str, ...] = ()
    startts: int | None = None
    endts: int | None = None
    stop: JobKey | None = None
    count: int | None = None
    start: int = 0
    jobmeta: tuple[str, ...] | None = None
    close_reasons: tuple[str, ...] = ()
    keys: tuple[JobKey, ...] | None = field(default=None)


def render_row(record: JobRecord, now: int, jobmeta: Sequence[str] | None) -> dict[str, Any]:
    """One line of `list`/`summary`, with the members `rows.LIST_ROW` declares, or with
    `jobmeta` those of `rows.JOBMETA_ROW`: the hosted service's fields, and a finished
    job's outcome counters (`jobs.outcome_counters`, stored with the metadata). Plain rows
    of a list are also built as JSON text by storage from the same declaration
    (`Storage.list_text`)."""
    key, spider, state, position, positions, tags, meta, counters = record
    ts = position >> jobs.POSITION_SHIFT
    row: dict[str, Any] = {}
    for member in rows.LIST_ROW if jobmeta is None else rows.JOBMETA_ROW:
        source = member.source
        if source is _KEY:
            row[member.name] = f"{key[0]}/{key[1]}/{key[2]}"
        elif source is _TS:
            row[member.name] = ts
        elif source is _STATE:
            row[member.name] = _LABELS[state]
        elif source is _ELAPSED:
            row[member.name] = now - ts
        elif source is _SPIDER:
            row[member.name] = spider
        elif source is _ENTERED:
            entered_at = positions.get(member.state)  # type: ignore[arg-type]
            if entered_at is not None:
                row[member.name] = entered_at >> jobs.POSITION_SHIFT
        elif source is _TAGS:
            if tags:
                row[member.name] = tags
        elif source is _JOBMETA:
            if meta is not None and jobmeta is not None:
                for name in jobmeta:
                    if name in meta and name not in row:  # never shadows key, ts, ...
                        row[name] = meta[name]
        elif counters is not None and state is rows.COUNTED_STATE:  # _COUNTERS
            for name, value in counters.items():
                row.setdefault(name, value)
    return row


# plain dicts and names: render_row runs once per listed row
_LABELS = {state: state.label for state in State}
_KEY, _TS, _STATE, _ELAPSED, _SPIDER, _ENTERED, _TAGS, _JOBMETA = (
    rows.Source.KEY, rows.Source.TS, rows.Source.STATE, rows.Source.ELAPSED,
    rows.Source.SPIDER, rows.Source.ENTERED, rows.Source.TAGS, rows.Source.JOBMETA)


class RenderedRows:
    """Plain rows as storage built them (`Storage.list_text`): JSON text, one row a line.
    No row holds a raw newline (JSON escapes it inside strings), so the lines are the
    rows. Not a dataclass: orjson would write one as an object of its fields."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def rows(self) -> list[dict[str, Any]]:
        """The rows as objects (for the formats that are not JSON)."""
        return [orjson.loads(line) for line in self.text.split("\n")] if self.text else []

    def json_lines(self) -> bytes:
        return (self.text + "\n").encode() if self.text else b""

    def json_array(self) -> bytes:
        return ("[" + self.text.replace("\n", ",") + "]").encode()


def json_default(value: Any) -> Any:
    """orjson's `default=` for answers holding `RenderedRows` (a summary's queues): their
    JSON array as it is."""
    if isinstance(value, RenderedRows):
        return orjson.Fragment(value.json_array())
    raise TypeError(f"{type(value).__name__} is not JSON")


def plain(value: Any) -> Any:
    """An answer with its `RenderedRows` as lists of objects."""
    if isinstance(value, RenderedRows):
        return value.rows()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class JobQueue:
    def __init__(
        self, storage: Storage, tokens: JobTokens, max_count: int, clock: Clock = SYSTEM
    ) -> None:
        self.storage = storage
        self.tokens = tokens
        self.max_count = max_count
        #: `elapsed` of listed jobs is measured on this clock
        self.clock = clock

    # -- writes ------------------------------------------------------------------------

    async def push(
        self, who: Principal, project: int, lines: Sequence[Any]
    ) -> list[dict[str, Any]]:
        who.check_project(project)
        new_jobs = [validation.new_job(line, f"line {i}") for i, line in enumerate(lines, 1)]
        pushed = await self.storage.push(project, new_jobs, who.name)
        answers: list[dict[str, Any]] = []
        for job, line, outcome in zip(new_jobs, lines, pushed, strict=True):
            if outcome.key is None:
                answers.append({"error": f"Active job exists with key {job.unique}",
                                "request": line})
            else:
                # a pushed running job has no lease: nothing takes its one run away
                token = self.tokens.issue(outcome.key) if job.state is State.RUNNING else None
                answers.append({"key": str(outcome.key), "auth": token})
        return answers

    async def start(
        self, who: Principal, project: int, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        who.check_project(project)
        params, botgroup = validation.start_params(params)
        claimed = await self.storage.start_job(
            project, StartRequest(dict(params), botgroup), who.name
        )
        if claimed is None:
            return None
        key, meta = claimed
        return {**meta, "key": str(key), "auth": self.tokens.issue_for_run(key, meta)}

    async def update(
        self, who: Principal, project: int, lines: Sequence[Any]
    ) -> list[dict[str, Any]]:
        if who.job is None:
            who.check_project(project)
        updates = [
            validation.job_update(line, f"line {i}", project) for i, line in enumerate(lines, 1)
        ]
        if who.job is not None:
            for upd in updates:
                if not isinstance(upd.target, JobKey):
                    raise errors.Forbidden("a job token cannot update a whole spider")
                who.check_job(upd.target)
            await check_run(self.storage, who)
        done = await self.storage.update(project, updates, who.name)
        return [{"key": str(u.key), "prevstate": u.prevstate.label} for u in done]

    async def cancel(
        self, who: Principal, project: int, keys: Sequence[Any] | None, count: int | None
    ) -> int:
        if keys is None:
            who.check_admin()
            return (await self.storage.cancel(project, None, count, who.name)).count
        parsed = []
        for i, item in enumerate(keys, 1):
            where = f"item {i}"
            obj = validation.expect_object(item, where)
            key = JobKey.parse(obj.get("key"), f"{where}: key")
            validation.in_project(key, project, where)
            who.check_job(key)
            parsed.append(key)
        await check_run(self.storage, who)
        return (await self.storage.cancel(project, parsed, None, who.name)).count

    # -- reads -------------------------------------------------------------------------

    async def _query(self, project: int, req: ListRequest) -> ListQuery:
        spider_ids: tuple[int, ...] | None = None
        if req.spiders:
            names = dict.fromkeys(req.spiders)  # a repeated name must not repeat rows
            found = [await self.storage.spider_id(project, s, create=False) for s in names]
            spider_ids = tuple(sid for sid in found if sid is not None)
        after = None
        if req.stop is not None:
            validation.in_project(req.stop, project, "stop")
            after = await self.storage.stop_position(req.stop, req.states)
            if after is None:
                raise errors.BadRequest(
                    f"stop: job {req.stop} was never in the listed queue(s)"
                    f" ({', '.join(s.label for s in req.states)})"
                )
        count = validation.window(req.count, self.max_count)
        return ListQuery(
            states=tuple(dict.fromkeys(req.states)), spiders=spider_ids, has_tags=req.has_tags,
            lacks_tags=req.lacks_tags, keys=req.keys, startts=req.startts, endts=req.endts,
            after_position=after, close_reasons=req.close_reasons, count=count,
            start=req.start, with_meta=req.jobmeta is not None,
        )

    async def list_jobs(
        self, who: Principal, project: int, req: ListRequest
    ) -> list[dict[str, Any]]:
        who.check_project(project)
        if req.count is None:
            req.count = LIST_COUNT
        query = await self._query(project, req)
        now = self.clock.now_ms()
        records = await self.storage.list_jobs(project, query)
        return [render_row(r, now, req.jobmeta) for r in records]

    async def list_page(
        self, who: Principal, project: int, req: ListRequest
    ) -> RenderedRows | list[dict[str, Any]]:
        """`list` as the HTTP layer answers it: plain rows built as JSON text by storage
        (one query, no object per row); rows with `jobmeta` built here."""
        if req.jobmeta is not None:
            return await self.list_jobs(who, project, req)
        who.check_project(project)
        if req.count is None:
            req.count = LIST_COUNT
        query = await self._query(project, req)
        return RenderedRows(await self.storage.list_text(project, query, self.clock.now_ms()))

    async def count(self, who: Principal, project: int, req: ListRequest) -> int:
        who.check_project(project)
        req.count = None
        return await self.storage.count_jobs(project, await self._query(project, req))

    async def summary(
        self, who: Principal, project: int, spider: int | None, state: State | None,
        req: ListRequest,
    ) -> list[dict[str, Any]]:
        """The newest rows of each queue; plain ones as `RenderedRows` (see `json_default`
        and `plain`)."""
        who.check_project(project)
        count = validation.window(SUMMARY_COUNT if req.count is None else req.count,
                                  self.max_count)
        counts = await self.storage.state_counts(project, spider)
        now = self.clock.now_ms()
        answer = []
        for queue in (state,) if state is not None else jobs.LISTABLE:
            query = ListQuery(
                states=(queue,), spiders=None if spider is None else (spider,),
                count=count, start=req.start, with_meta=req.jobmeta is not None,
            )
            summary: RenderedRows | list[dict[str, Any]]
            if req.jobmeta is None:
                summary = RenderedRows(await self.storage.list_text(project, query, now))
            else:
                records = await self.storage.list_jobs(project, query)
                summary = [render_row(r, now, req.jobmeta) for r in records]
            answer.append({"name": queue.label, "count": counts.get(queue, 0),
                           "summary": summary})
        return answer

    async def jobsummary(
        self, who: Principal, project: int, keys: Sequence[JobKey], jobmeta: Sequence[str]
    ) -> list[dict[str, Any]]:
        who.check_project(project)
        query = ListQuery(
            states=(*jobs.LISTABLE, State.DELETED), keys=tuple(keys), count=None,
            with_meta=True,
        )
        found = {r.key: r for r in await self.storage.list_jobs(project, query)}
        now = self.clock.now_ms()
        return [render_row(found[k], now, tuple(jobmeta)) for k in keys if k in found]

    async def last_jobs(
        self, who: Principal, project: int, spider: int | None, after_spider: int = 0,
        start: int = 0, count: int | None = None,
    ) -> list[dict[str, Any]]:
        """The newest job of each spider, one row per spider in spider id order; the client
        pages them with `startafter` (a spider or job key), `start` and `count`."""
        who.check_project(project)
        now = self.clock.now_ms()
        records = [r for r in await self.storage.last_jobs(project, spider)
                   if r.key.spider > after_spider]
        records = records[start:] if count is None else records[start:start + count]
        answer = []
        for record in records:
            row = render_row(record, now, None)
            if record.meta is not None and "close_reason" in record.meta:
                row["close_reason"] = record.meta["close_reason"]
            answer.append(row)
        return answer

    async def project_summary(self, project: int) -> dict[str, Any]:
        counts = await self.storage.state_counts(project)
        summary: dict[str, Any] = {"project": project}
        for state in jobs.LISTABLE:
            summary[state.label] = counts.get(state, 0)
        summary["has_capacity"] = await self.storage.has_capacity(project)
        return summary

    async def project_jobsummary(self, project: int) -> dict[str, Any]:
        """`projects/:pid/jobsummary`: the summary plus the units of the running jobs and
        the most units a pending job asks for (null when none waits), as hosted (the
        rows of `projects/jobsummaries` have only the summary)."""
        summary = await self.project_summary(project)
        running, pending_max = await self.storage.units_in_use(project)
        summary["running_units_count"] = running
        summary["pending_units_max"] = pending_max
        return summary

    async def project_summaries(self, who: Principal) -> list[dict[str, Any]]:
        projects = await self.storage.projects()
        return [await self.project_summary(p) for p in projects if who.can_see(p)]

    # -- job metadata ---------------------------------------------------------------------

    async def job_meta(self, who: Principal, key: JobKey) -> dict[str, Any]:
        who.check_job(key)
        meta = await self.storage.get_job_meta(key)
        if meta is None:
            raise errors.NotFound(f"job {key} not found")
        return meta

    async def set_job_meta(self, who: Principal, key: JobKey, lines: Sequence[Any]) -> None:
        who.check_job(key)
        fields: dict[str, Any] = {}
        for i, line in enumerate(lines, 1):
            fields.update(validation.meta_fields(line, f"line {i}"))
        await check_run(self.storage, who)
        if not await self.storage.set_job_meta(key, fields):
            raise errors.NotFound(f"job {key} not found")

    async def delete_job_meta_field(self, who: Principal, key: JobKey, name: str) -> None:
        who.check_job(key)
        await check_run(self.storage, who)
        if not await self.storage.delete_job_meta_field(key, name):
            raise errors.NotFound(f"job {key} not found")

    async def remove_job(self, who: Principal, key: JobKey) -> None:
        who.check_job(key)
        await check_run(self.storage, who)
        if not await self.storage.remove_job(key):
            raise errors.NotFound(f"job {key} not found")

    # -- spiders, settings, botgroups -------------------------------------------------------

    async def spider_id(self, who: Principal, project: int, name: str, create: bool) -> int | None:
        who.check_project(project)
        validation.name(name, "spider name")
        return await self.storage.spider_id(project, name, create)

    async def settings(self, who: Principal, project: int) -> dict[str, Any]:
        who.check_project(project)
        return await self.storage.get_settings(project)

    async def update_settings(
        self, who: Principal, project: int, fields: dict[str, Any], remove: Sequence[str] = ()
    ) -> None:
        who.check_project(project)
        validation.settings_fields(fields)
        await self.storage.update_settings(project, fields, remove)

    async def set_max_running(self, who: Principal, botgroup: str, value: Any) -> None:
        who.check_admin()
        validation.name(botgroup, "botgroup")
        await self.storage.set_max_running(botgroup, validation.max_running(value))

    async def delete_botgroup(self, who: Principal, botgroup: str) -> None:
        who.check_admin()
        validation.name(botgroup, "botgroup")
        await self.storage.delete_botgroup(botgroup)
