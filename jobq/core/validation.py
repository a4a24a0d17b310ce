"""Checks of what clients send, turned into storage requests. Every check runs before
any write, so a rejected request changes nothing; every message names the line or
parameter and what is wrong with it."""

from __future__ import annotations

from typing import Any

import orjson

from jobq import errors
from jobq.domain import jobs
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import JobUpdate, NewJob

#: longest spider name, tag or botgroup name (characters)
MAX_NAME = 255
MAX_UNITS = 1000
#: the databases store 64-bit integers; a larger cap means the same as this one
MAX_INT = 2**63 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.BadRequest(f"{where}: expected a JSON object, got {type_name(value)}")
    return value


def type_name(value: Any) -> str:
    return {
        dict: "an object", list: "an array", str: "a string", bool: "a boolean",
        int: "a number", float: "a number", type(None): "null",
    }.get(type(value), type(value).__name__)


def name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        got = "an empty string" if value == "" else type_name(value)
        raise errors.BadRequest(f"{where}: expected a non-empty string, got {got}")
    if len(value) > MAX_NAME:
        raise errors.BadRequest(f"{where}: longer than {MAX_NAME} characters")
    return no_nul(value, where)


def no_nul(value: str, where: str) -> str:
    """Names are stored as text, which PostgreSQL cannot hold with a NUL character: refuse
    them on every backend alike."""
    if "\x00" in value:
        raise errors.BadRequest(f"{where}: contains a NUL character")
    return value


def tags(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise errors.BadRequest(f"{where}: expected a list of strings, got {type_name(value)}")
    return [name(tag, f"{where}[{i}]") for i, tag in enumerate(value)] or None


def new_job(line: Any, where: str) -> NewJob:
    fields = expect_object(line, where)
    if "spider" not in fields:
        raise errors.BadRequest(f"{where}: 'spider' is required")
    spider = name(fields["spider"], f"{where}: spider")
    state = State.PENDING
    if "state" in fields:
        state = State.parse(fields["state"], f"{where}: state")
    priority = fields.get("priority", jobs.PRIORITY_DEFAULT)
    if not _is_int(priority) or not jobs.PRIORITY_MIN <= priority <= jobs.PRIORITY_MAX:
        raise errors.BadRequest(
            f"{where}: priority must be an integer from {jobs.PRIORITY_MIN} to {jobs.PRIORITY_MAX}"
        )
    units = fields.get("units", 1)
    if not _is_int(units) or not 1 <= units <= MAX_UNITS:
        raise errors.BadRequest(f"{where}: units must be an integer from 1 to {MAX_UNITS}")
    job_tags = tags(fields.get("tags"), f"{where}: tags")
    unique = fields.get("unique")
    if unique is not None and not isinstance(unique, str):
        unique = orjson.dumps(unique).decode()
    if unique is not None:
        no_nul(unique, f"{where}: unique")
    meta = {k: v for k, v in fields.items() if k not in ("state", "unique", "auth")}
    meta["priority"] = priority
    meta["units"] = units
    if job_tags is None:
        meta.pop("tags", None)
    else:
        meta["tags"] = job_tags
    return NewJob(spider, state, priority, unique, job_tags, meta)


def job_update(line: Any, where: str, project: int) -> JobUpdate:
    fields = expect_object(line, where)
    if "key" not in fields:
        raise errors.BadRequest(f"{where}: 'key' is required")
    target = jobs.parse_target(fields["key"], f"{where}: key")
    in_project(target, project, where)
    state = State.parse(fields["state"], f"{where}: state") if "state" in fields else None
    if "tags" in fields:
        tags(fields["tags"], f"{where}: tags")
    rest = {k: v for k, v in fields.items() if k not in ("key", "state")}
    return JobUpdate(target, state, rest)


def in_project(key: JobKey | SpiderKey, project: int, where: str) -> None:
    if key.project != project:
        raise errors.BadRequest(f"{where}: key {key} is not in project {project}")


def meta_fields(line: Any, where: str) -> dict[str, Any]:
    fields = expect_object(line, where)
    if "tags" in fields:
        tags(fields["tags"], f"{where}: tags")
    return fields


def botgroups_setting(value: Any) -> None:
    if not isinstance(value, list):
        raise errors.BadRequest(f"botgroups: expected a list of names, got {type_name(value)}")
    for i, group in enumerate(value):
        name(group, f"botgroups[{i}]")


def max_running(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 0:
        raise errors.BadRequest("max_running: expected a non-negative integer or null")
    return min(int(value), MAX_INT)
