"""The job calls of Scrapy Cloud's *app* API (`run.json`, `jobs/*.json`, spiders),
mapped onto the queue service: a run is a JobQ push, a stop a cancel, a delete a move to
`deleted`, tags an update. So the rules (states, uniqueness, access) are the queue's;
this module only translates the form fields into push lines and rows back.

Form fields arrive as (name, value) pairs, lists as repeated names, dicts as JSON text.
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Sequence
from typing import Any

import orjson

from jobq import errors
from jobq.core import validation
from jobq.core.credentials import Principal
from jobq.core.queue import JobQueue, ListRequest
from jobq.domain import jobs
from jobq.domain.jobs import JobKey, State

#: form fields of run.json that are not spider arguments
RUN_FIELDS = frozenset({
    "project", "spider", "add_tag", "priority", "units", "job_settings", "meta",
    "environment", "cmd_args", "apikey",
})
#: metadata read for a jobs/list.json row
LIST_META = ("spider", "close_reason", "priority", "version", "scrapystats", "spider_type",
             "running_time", "logs", "items", "pages", "errors")


class Form:
    """Form fields (a list of name/value pairs: names repeat for lists)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def get(self, name: str) -> str | None:
        found = None
        for key, value in self.pairs:
            if key == name:
                found = value
        return found

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise errors.BadRequest(f"{name}: this field is required")
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        text = self.get(name)
        if text is None or text == "":
            return None
        try:
            value = int(text)
        except ValueError:
            raise errors.BadRequest(
                f"{name}: expected an integer from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise errors.BadRequest(
                f"{name}: expected an integer from {low} to {high}, got {value}")
        return value

    def json_object(self, name: str) -> dict[str, Any] | None:
        text = self.get(name)
        if text is None or text == "":
            return None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise errors.BadRequest(f"{name}: not valid JSON") from None
        if not isinstance(value, dict):
            raise errors.BadRequest(
                f"{name}: expected a JSON object, got {validation.type_name(value)}")
        return value

    def project(self) -> int:
        return jobs.parse_id(self.required("project"), "project")


def run_line(form: Form, registered: Sequence[str]) -> dict[str, Any]:
    """The JobQ push line of a run.json form (checked: a refused run changes nothing)."""
    spider = validation.name(form.required("spider"), "spider")
    check_known_spider(spider, registered)
    line: dict[str, Any] = {"spider": spider}
    args = {k: v for k, v in form.pairs if k not in RUN_FIELDS}
    for name_ in args:
        validation.no_nul(name_, "spider argument name")
    priority = form.integer("priority", jobs.PRIORITY_MIN, jobs.PRIORITY_MAX)
    units = form.integer("units", 1, validation.MAX_UNITS)
    settings = form.json_object("job_settings")
    environment = form.json_object("environment")
    meta = form.json_object("meta") or {}
    tags = [validation.name(t, "add_tag") for t in form.getlist("add_tag")]
    cmd_args = form.get("cmd_args")
    # the metadata the hosted service stores: meta first, then the fields it owns
    line.update({k: v for k, v in meta.items() if k not in ("spider", "unique", "auth")})
    if args:
        line["spider_args"] = args
    line["priority"] = jobs.PRIORITY_DEFAULT if priority is None else priority
    line["units"] = 1 if units is None else units
    if tags:
        earlier = validation.tags(meta.get("tags"), "meta: tags") or []
        line["tags"] = list(dict.fromkeys([*earlier, *tags]))
    if settings:
        line["job_settings"] = settings
    if environment:
        line["environment"] = environment
    if cmd_args:
        try:
            line["job_cmd"] = [spider, *shlex.split(cmd_args)]
        except ValueError as exc:
            raise errors.BadRequest(f"cmd_args: {exc}") from None
        line["cmd_args"] = cmd_args
    # a second run with the same spider and arguments is refused while one is active
    line["unique"] = "run:" + orjson.dumps([spider, sorted(args.items())]).decode()
    return line


def check_known_spider(spider: str, registered: Sequence[str]) -> None:
    """Once workers have registered the spiders they can run, a job of any other spider
    would wait forever: refuse it (runs and schedules alike)."""
    if registered and spider not in registered:
        known = ", ".join(registered[:20]) + (", ..." if len(registered) > 20 else "")
        raise errors.BadRequest(
            f"spider: {spider!r} is not a spider of any registered worker of this project"
            f" (known: {known})"
        )


def _iso(ms: Any) -> str | None:
    if not isinstance(ms, int):
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def list_row(row: dict[str, Any]) -> dict[str, Any]:
    """A JobQ list row (with LIST_META) as a jobs/list.json row."""
    stats = row.get("scrapystats")
    if not isinstance(stats, dict):
        stats = {}
    return {
        "id": row["key"], "spider": row.get("spider"), "state": row["state"],
        "close_reason": row.get("close_reason"),
        "items_scraped": row.get("items", stats.get("item_scraped_count", 0)),
        "responses_received": row.get("pages", stats.get("response_received_count", 0)),
        "errors_count": row.get("errors", stats.get("log_count/ERROR", 0)),
        "logs": row.get("logs", 0), "elapsed": row["elapsed"],
        "started_time": _iso(row.get("running_time")), "updated_time": _iso(row["ts"]),
        "priority": row.get("priority", jobs.PRIORITY_DEFAULT), "tags": row.get("tags", []),
        "version": row.get("version"), "spider_type": row.get("spider_type", "manual"),
    }


class AppApi:
    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.storage = queue.storage

    async def run(self, who: Principal, form: Form) -> str:
        project = form.project()
        who.check_project(project)
        line = run_line(form, await self.storage.registered_spiders(project))
        (answer,) = await self.queue.push(who, project, [line])
        if "error" in answer:
            raise errors.BadRequest(f"{line['spider']} already scheduled")
        return str(answer["key"])

    def _job_keys(self, form: Form, project: int) -> list[JobKey]:
        keys = [JobKey.parse(k, "job") for k in form.getlist("job")]
        for key in keys:
            validation.in_project(key, project, "job")
        return keys

    async def _tags_of(self, who: Principal, key: JobKey) -> list[str] | None:
        try:
            meta = await self.queue.job_meta(who, key)
        except errors.NotFound:
            return None
        return jobs.tags_of(meta) or []

    async def update_tags(self, who: Principal, form: Form) -> int:
        project = form.project()
        who.check_project(project)
        add = [validation.name(t, "add_tag") for t in form.getlist("add_tag")]
        remove = form.getlist("remove_tag")
        keys = self._job_keys(form, project)
        spider = form.get("spider")
        if not keys and not spider:
            raise errors.BadRequest("job: give job keys (job=53/1/7) or a spider (spider=NAME)")
        if spider and not keys:
            req = ListRequest(states=jobs.LISTABLE, spiders=(spider,),
                              count=self.queue.max_count)
            keys = [JobKey.parse(r["key"]) for r in await self.queue.list_jobs(who, project, req)]
        lines = []
        for key in keys:
            tags = await self._tags_of(who, key)
            if tags is None:
                continue
            new = [t for t in tags if t not in remove]
            new += [t for t in dict.fromkeys(add) if t not in new]
            if new != tags:
                lines.append({"key": str(key), "tags": new})
        if lines:
            await self.queue.update(who, project, lines)
        return len(lines)

    async def stop(self, who: Principal, form: Form) -> int:
        project = form.project()
        who.check_project(project)
        keys = self._job_keys(form, project)
        if not keys:
            raise errors.BadRequest("job: this field is required")
        return await self.queue.cancel(who, project, [{"key": str(k)} for k in keys], None)

    async def delete(self, who: Principal, form: Form) -> int:
        project = form.project()
        who.check_project(project)
        keys = self._job_keys(form, project)
        if not keys:
            raise errors.BadRequest("job: this field is required")
        found = []
        for key in keys:
            if await self._tags_of(who, key) is not None:
                found.append({"key": str(key), "state": State.DELETED.label})
        if found:
            await self.queue.update(who, project, found)
        return len(found)

    async def list_jobs(self, who: Principal, form: Form) -> tuple[list[dict[str, Any]], int]:
        project = form.project()
        who.check_project(project)
        states = tuple(State.parse(s, "state") for s in form.getlist("state")) or jobs.LISTABLE
        keys = self._job_keys(form, project)
        count = form.integer("count", 0, self.queue.max_count)
        offset = form.integer("offset", 0, jobs.MAX_INT) or 0
        req = ListRequest(
            states=states, spiders=tuple(form.getlist("spider")),
            has_tags=tuple(form.getlist("has_tag")), lacks_tags=tuple(form.getlist("lacks_tag")),
            keys=tuple(keys) or None, jobmeta=LIST_META, count=count, start=offset,
        )
        rows = await self.queue.list_jobs(who, project, req)
        total_req = ListRequest(
            states=states, spiders=req.spiders, has_tags=req.has_tags,
            lacks_tags=req.lacks_tags, keys=req.keys,
        )
        total = await self.queue.count(who, project, total_req)
        return [list_row(r) for r in rows], total

    async def spiders(self, who: Principal, project: int) -> list[dict[str, Any]]:
        who.check_project(project)
        known = await self.storage.list_spiders(project)
        rows = [{"id": name, "type": "manual", "version": None, "tags": tags}
                for _, name, tags in known]
        names = {name for _, name, _ in known}
        rows += [{"id": name, "type": "manual", "version": None, "tags": []}
                 for name in await self.storage.registered_spiders(project) if name not in names]
        return rows

    async def _spider_name(self, project: int, spider: int) -> str:
        names = await self.storage.spider_names(project, [spider])
        if spider not in names:
            raise errors.NotFound(f"spider {project}/{spider} not found")
        return names[spider]

    async def spider(self, who: Principal, project: int, spider: int) -> dict[str, Any]:
        who.check_project(project)
        name = await self._spider_name(project, spider)
        return {"id": name, "type": "manual", "version": None,
                "tags": await self.storage.spider_tags(project, spider)}

    async def update_spider_tags(
        self, who: Principal, project: int, spider: int, body: Any
    ) -> list[str]:
        who.check_project(project)
        fields = validation.expect_object(body, "body")
        unknown = set(fields) - {"add", "remove"}
        if unknown:
            raise errors.BadRequest(f"body: unknown field(s) {', '.join(sorted(unknown))}")
        add = validation.tags(fields.get("add"), "add") or []
        remove = validation.tags(fields.get("remove"), "remove") or []
        if not add and not remove:
            raise errors.BadRequest("body: give tags to add or remove")
        await self._spider_name(project, spider)
        return await self.storage.update_spider_tags(project, spider, add, remove)

    async def projects(self, who: Principal) -> list[int]:
        visible = [p for p in await self.storage.projects() if who.can_see(p)]
        if who.job is None and who.project is not None and who.project not in visible:
            visible.append(who.project)
        return sorted(visible)
