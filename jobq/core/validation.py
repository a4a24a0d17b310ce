"""Checks of what clients send, turned into storage requests. Every check runs before
any write, so a rejected request changes nothing; every message names the line or
parameter and what is wrong with it."""

from __future__ import annotations

from typing import Any

import orjson

from jobq import errors
from jobq.domain import jobs, project_settings
from jobq.domain.jobs import JobKey, SpiderKey, State
from jobq.domain.records import JobUpdate, NewJob

#: longest spider name, tag or botgroup name (characters)
MAX_NAME = 255
MAX_UNITS = 1000
#: deepest nesting of stored JSON (orjson writes no deeper; it reads up to 1,024)
MAX_DEPTH = 254


def _is_int(value: Any) -> bool:
    """An integer and not a boolean: parsed JSON holds exact ints (bool is a subclass)."""
    return type(value) is int


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


def stored_json(value: Any, where: str) -> None:
    """Whatever a client stores (metadata, start parameters, settings) holds no NUL
    character, in keys or values at any depth: PostgreSQL cannot read one back out of
    JSON as text (`->>`), so a filter on the field would fail ever after."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # what JSON parsing took, storing it may not
        raise errors.BadRequest(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    # fast path: orjson escapes NUL as \u0000, and a value without it has none
    if b"\\u0000" not in encoded:
        return
    path = _nul_path(value)
    if path is not None:
        raise errors.BadRequest(f"{where}: {path} contains a NUL character")


def _nul_path(value: Any, path: str = "") -> str | None:
    """Where in `value` a NUL character is ("field", "field.sub[2]"), or None."""
    if isinstance(value, str):
        return (path or "value") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return f"a field name in {path}" if path else "a field name"
            found = _nul_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


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
    stored_json(fields, where)  # metadata and `unique` alike
    unique = fields.get("unique")
    if unique is not None and not isinstance(unique, str):
        unique = orjson.dumps(unique).decode()
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
    stored_json(rest, where)
    return JobUpdate(target, state, rest)


def in_project(key: JobKey | SpiderKey, project: int, where: str) -> None:
    if key.project != project:
        raise errors.BadRequest(f"{where}: key {key} is not in project {project}")


def meta_fields(line: Any, where: str) -> dict[str, Any]:
    """Fields a client merges into a job's metadata (metadata POST, startjob)."""
    fields = expect_object(line, where)
    if "tags" in fields:
        tags(fields["tags"], f"{where}: tags")
    stored_json(fields, where)
    return fields


def start_params(value: Any) -> tuple[dict[str, Any], str | None]:
    """startjob's parameters, merged into the claimed job's metadata, and its botgroup."""
    params = meta_fields(value, "start parameters")
    botgroup = params.get("botgroup")
    if botgroup is not None:
        name(botgroup, "start parameters: botgroup")
    return params, botgroup


def settings_fields(fields: dict[str, Any]) -> None:
    """Settings a client merges into a project's."""
    if "botgroups" in fields:
        botgroups_setting(fields["botgroups"])
    project_settings.check(fields)
    stored_json(fields, "settings")


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
    return min(int(value), jobs.MAX_INT)


def window(count: int | None, max_count: int) -> int | None:
    """A list's `count`: at most `max_count` rows (the server's setting)."""
    if count is not None and count > max_count:
        raise errors.BadRequest(f"count: at most {max_count}")
    return count
