"""The OpenAPI 3.1 description of the whole HTTP API, served at `/openapi.json`:
generated from the route table (`jobq.http.table`), with the schemas of bodies and rows
the table's routes refer to. A schemathesis run against a live server checks that the
answers keep to it.

Conventions the document encodes:
- JSON lines (`application/x-jsonlines`, one JSON value a line) are described by an array
  schema: item N of the array is line N. Request bodies may also be sent as JSON: one object
  (one line), or for `cancel` one array.
- Endpoints answering rows honour `format` (`jl`, `json`, `csv`, `xml`, `text`), so their 200
  lists all five media types; those answering one value answer `application/json` unless a
  `format` is given, when the value becomes the only row.
- Errors: 401 and 403 answer the JSON `{"error": ..., "message": ...}`; every other error a
  plain-text reason; routes with an error shape of their own (the app API) answer it for
  every error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobq.domain import jobs, schedules
from jobq.http import responses
from jobq.http.spec import Access, BodyKind, ErrorShape, Param, Route

JSON = "application/json"
JSONLINES = responses.JSONLINES
TEXT = "text/plain"
FORM = "application/x-www-form-urlencoded"

Schema = dict[str, Any]

# -- building blocks ------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


ID = {"type": "integer", "minimum": 1, "maximum": jobs.MAX_ID}
TIMESTAMP = {"type": "integer", "description": "milliseconds since the UNIX epoch"}
NAME = {"type": "string", "minLength": 1, "maxLength": 255}
STATES = ["pending", "running", "finished", "deleted"]
LISTABLE = ["pending", "running", "finished"]
JOB_KEY_PATTERN = r"^[1-9][0-9]{0,17}/[1-9][0-9]{0,17}/[1-9][0-9]{0,17}$"
SPIDER_KEY_PATTERN = r"^[1-9][0-9]{0,17}/[1-9][0-9]{0,17}$"
RECORD_KEY_PATTERN = r"^[1-9][0-9]{0,17}/[1-9][0-9]{0,17}/[1-9][0-9]{0,17}/(0|[1-9][0-9]{0,17})$"
MSGPACK = "application/x-msgpack"

#: the intervals a worker is told when it registers and at each heartbeat (seconds)
_INTERVALS: Schema = {
    "heartbeat_interval": {"type": "number"}, "worker_timeout": {"type": "number"},
    "cancel_timeout": {"type": "number"},
}

SCHEMAS: dict[str, Schema] = {
    "JobKey": {"type": "string", "pattern": JOB_KEY_PATTERN, "examples": ["53/7/81"]},
    "SpiderKey": {"type": "string", "pattern": SPIDER_KEY_PATTERN, "examples": ["53/7"]},
    "State": {"type": "string", "enum": STATES},
    "Tags": {
        "description": "tags: a list of non-empty strings (null clears them)",
        "anyOf": [array(NAME), {"type": "null"}],
    },
    "Error": {
        "description": "the body of 401 and 403",
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": ["Unauthorized", "Forbidden"]},
            "message": {"type": "string"},
        },
    },
    # -- rows ----------------------------------------------------------------------------
    "JobRow": {
        "description": (
            "A job as `list`, `summary` and `jobsummary` show it: `key`, `state`, `ts` (the"
            " time the job entered its current state) and `elapsed` (now - ts, ms); without"
            " `jobmeta` also `spider` and the time of each state the job entered; `tags` when"
            " it has tags; with `jobmeta` the metadata fields asked for, verbatim."
        ),
        "type": "object",
        "required": ["key", "ts", "state", "elapsed"],
        "properties": {
            "key": ref("JobKey"),
            "ts": TIMESTAMP,
            "state": ref("State"),
            "elapsed": {"type": "integer"},
            "spider": {"type": "string"},
            "pending_time": TIMESTAMP,
            "running_time": TIMESTAMP,
            "finished_time": TIMESTAMP,
            "deleted_time": TIMESTAMP,
            "tags": {"description": "the job's tags (a list of strings); asked for with"
                                    " `jobmeta` by a job without tags, the stored value"},
            # not typed: a `jobmeta` field of the same name comes first, verbatim
            "items": {"description": "counters of a finished job with `scrapystats`, on"
                                     " every row of it: item_scraped_count"},
            "pages": {"description": "response_received_count"},
            "logs": {"description": "the sum of the log_count/LEVEL stats"},
            "errors": {"description": "log_count/ERROR"},
        },
        "additionalProperties": True,
    },
    "SummaryQueue": {
        "type": "object",
        "required": ["name", "count", "summary"],
        "properties": {
            "name": {"type": "string", "enum": LISTABLE},
            "count": {"type": "integer", "minimum": 0},
            "summary": array(ref("JobRow")),
        },
        "additionalProperties": False,
    },
    "PushResult": {
        "oneOf": [
            {
                "type": "object",
                "required": ["key", "auth"],
                "properties": {
                    "key": ref("JobKey"),
                    "auth": {
                        "type": ["string", "null"],
                        "description": "a job token when the job starts running, else null",
                    },
                },
                "additionalProperties": False,
            },
            {
                "description": "a line refused because an active job has the same `unique`",
                "type": "object",
                "required": ["error", "request"],
                "properties": {"error": {"type": "string"}, "request": {"type": "object"}},
                "additionalProperties": False,
            },
        ],
    },
    "UpdateResult": {
        "type": "object",
        "required": ["key", "prevstate"],
        "properties": {"key": ref("JobKey"), "prevstate": ref("State")},
        "additionalProperties": False,
    },
    "JobMeta": {
        "description": (
            "the whole metadata of a job (never its token). Only the fields typed here are the"
            " server's alone; the others (`priority`, `units`, `tags`, `scheduled_by`,"
            " `started_by`, `close_reason`, ...) start as the server sets them, but clients may"
            " overwrite them with any JSON value (push, update, start parameters, POST jobs/K)"
        ),
        "type": "object",
        "required": ["project", "spider", "state"],
        "properties": {
            "project": ID,
            "spider": {"type": "string"},
            "state": ref("State"),
            "pending_time": TIMESTAMP,
            "running_time": TIMESTAMP,
            "finished_time": TIMESTAMP,
            "deleted_time": TIMESTAMP,
        },
        "additionalProperties": True,
    },
    "StartedJob": {
        "description": "the claimed job: its metadata plus `key` and a job token `auth`",
        "allOf": [
            ref("JobMeta"),
            {
                "type": "object",
                "required": ["key", "auth"],
                "properties": {"key": ref("JobKey"), "auth": {"type": "string"}},
            },
        ],
    },
    "ProjectSummary": {
        "type": "object",
        "required": ["project", "pending", "running", "finished", "has_capacity"],
        "properties": {
            "project": ID,
            "pending": {"type": "integer", "minimum": 0},
            "running": {"type": "integer", "minimum": 0},
            "finished": {"type": "integer", "minimum": 0},
            "has_capacity": {"type": "boolean"},
            "running_units_count": {
                "type": "integer", "minimum": 0,
                "description": "projects/:pid/jobsummary only: units of the running jobs"},
            "pending_units_max": {
                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                "description": "projects/:pid/jobsummary only: the most units a pending job"
                               " asks for, null when none is pending"},
        },
        "additionalProperties": True,
    },
    # -- request bodies ------------------------------------------------------------------
    "NewJob": {
        "description": "one job to create; fields other than these are stored as metadata",
        "type": "object",
        "required": ["spider"],
        "properties": {
            "spider": NAME,
            "priority": {"type": "integer", "minimum": 0, "maximum": 4, "default": 2},
            "units": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
            "tags": ref("Tags"),
            "state": {**ref("State"), "default": "pending"},
            "unique": {"description": "refuses the line while an active job has this value"},
        },
        "additionalProperties": True,
    },
    "JobUpdate": {
        "description": (
            "a job key or a spider key (all that spider's jobs), an optional new state; other"
            " fields are merged into the metadata"
        ),
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": {"anyOf": [ref("JobKey"), ref("SpiderKey")]},
            "state": ref("State"),
            "tags": ref("Tags"),
        },
        "additionalProperties": True,
    },
    "MetaFields": {
        "description": "fields to merge into a job's metadata (`state`, `auth`, ... ignored)",
        "type": "object",
        "properties": {"tags": ref("Tags")},
        "additionalProperties": True,
    },
    "StartParams": {
        "description": "start parameters, stored into the claimed job's metadata",
        "type": "object",
        "properties": {"botgroup": NAME, "worker_id": {
            "type": "string", "description": "a registered worker's id: the job gets a lease"}},
        "additionalProperties": True,
    },
    # -- job data: items, logs, requests ------------------------------------------------
    "RecordKey": {"type": "string", "pattern": RECORD_KEY_PATTERN,
                  "examples": ["53/7/81/0"]},
    "Record": {
        "description": "an item, log line or request, as written; `_key` (its RecordKey)"
                       " and `_ts` (ms, when it was written) when asked for with `meta`",
        "type": "object",
        "properties": {"_key": ref("RecordKey"), "_ts": TIMESTAMP},
        "additionalProperties": True,
    },
    "RecordStats": {
        "type": "object",
        "required": ["counts", "totals"],
        "properties": {
            "counts": {"description": "logs: lines by level; items and requests: records by"
                                      " field name (at most 1,000 names)",
                       "type": "object",
                       "additionalProperties": {"type": "integer", "minimum": 0}},
            "totals": {
                "type": "object",
                "required": ["input_bytes", "input_values"],
                "properties": {"input_bytes": {"type": "integer", "minimum": 0},
                               "input_values": {"type": "integer", "minimum": 0}},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    # -- periodic jobs -------------------------------------------------------------------
    "Schedule": {
        "description": "a schedule (see README); one schedule alone also has its last `ticks`",
        "type": "object",
        "required": ["id", "project", "spider", "when", "paused", "next_run_time"],
        "properties": {
            "id": ID, "project": ID, "spider": {"type": "string"},
            "cron": {"type": ["string", "null"]}, "tz": {"type": "string"},
            "every": {"type": ["string", "null"]}, "when": {"type": "string"},
            "args": {"type": "object", "additionalProperties": {"type": "string"}},
            "job_settings": {"type": "object"}, "tags": array({"type": "string"}),
            "priority": {"type": "integer"}, "units": {"type": "integer"},
            "job_cmd": {"anyOf": [array({"type": "string"}), {"type": "null"}]},
            "overlap": {"enum": list(schedules.OVERLAP)},
            "catch_up": {"enum": list(schedules.CATCH_UP)},
            "catch_up_max": {"type": "integer"}, "description": {"type": "string"},
            "paused": {"type": "boolean"},
            "next_run_time": {**TIMESTAMP, "type": ["integer", "null"]},
            "last_run_time": {**TIMESTAMP, "type": ["integer", "null"]},
            "last_job": {"anyOf": [ref("JobKey"), {"type": "null"}]},
        },
        "additionalProperties": True,
    },
    "ScheduleFields": {
        "description": "what a schedule pushes and when: `cron` (with `tz`) or `every`, not"
                       " both; a new schedule needs `spider` and one of them",
        "type": "object",
        "properties": {
            "spider": NAME,
            "cron": {"type": ["string", "null"], "examples": ["0 3 * * *"]},
            "tz": {"type": "string", "examples": ["UTC", "Europe/Madrid"]},
            "every": {"type": ["string", "null"], "examples": ["30s", "6h", "1h30m"]},
            "args": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            "job_settings": {"type": ["object", "null"]},
            "tags": ref("Tags"),
            "priority": {"type": "integer", "minimum": jobs.PRIORITY_MIN,
                         "maximum": jobs.PRIORITY_MAX},
            "units": {"type": "integer", "minimum": 1, "maximum": 1000},
            "job_cmd": {"anyOf": [array({"type": "string"}, minItems=1), {"type": "null"}]},
            "overlap": {"enum": list(schedules.OVERLAP)},
            "catch_up": {"enum": list(schedules.CATCH_UP)},
            "catch_up_max": {"type": "integer", "minimum": 1,
                             "maximum": schedules.CATCH_UP_MAX_LIMIT},
            "paused": {"type": "boolean"},
            "description": {"type": "string", "maxLength": 1000},
        },
        "additionalProperties": False,
    },
    "CancelItem": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": ref("JobKey")},
        "additionalProperties": True,
    },
    # -- workers and leases (issue 10) ---------------------------------------------------
    "WorkerInfo": {
        "description": "what a worker says of itself when it registers",
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {
            "name": NAME, "host": {"type": "string", "maxLength": 255},
            "slots": {"type": "integer", "minimum": 1, "maximum": 10_000},
            "botgroups": array(NAME), "projects": array(ID),
            "version": {"type": "string", "maxLength": 255},
        },
    },
    "Registered": {
        "type": "object", "required": ["id", *_INTERVALS],
        "properties": {"id": {"type": "string"}, **_INTERVALS},
    },
    "WorkerRow": {
        "type": "object",
        "required": ["id", "name", "state", "last_heartbeat", "jobs"],
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "host": {"type": "string"},
            "slots": {"type": "integer"}, "botgroups": array({"type": "string"}),
            "projects": array({"type": "integer"}), "version": {"type": "string"},
            "registered_time": TIMESTAMP, "last_heartbeat": TIMESTAMP,
            "state": {"type": "string", "enum": ["active", "lost"]},
            "lost_time": {"anyOf": [TIMESTAMP, {"type": "null"}]},
            "jobs": array(ref("JobKey")),
        },
    },
    "Heartbeat": {
        "description": "the jobs the worker runs",
        "type": "object", "additionalProperties": False,
        "properties": {"jobs": array(ref("JobKey"), maxItems=10_000)},
    },
    "HeartbeatAnswer": {
        "type": "object", "required": ["id", "jobs"],
        "properties": {"id": {"type": "string"}, "jobs": array(ref("JobAnswer")),
                       **_INTERVALS},
    },
    "JobAnswer": {
        "description": "what the server wants of one job the worker runs",
        "type": "object", "required": ["key", "action"],
        "properties": {
            "key": ref("JobKey"), "action": {"type": "string", "enum": ["continue", "stop"]},
            "finish": {"type": "boolean", "description": "report the outcome (false: the job"
                                                         " is not leased to this worker)"},
            "reason": {"type": "string", "description": "the close_reason to finish with"},
            "message": {"type": "string"},
            "auth": {"type": "string", "description": "of a `continue`: a fresh job token"
                                                      " of the run, for its further writes"},
        },
    },
}

# -- responses ----------------------------------------------------------------------------

_ANY_TEXT = {"schema": {"type": "string"}}


def rows_content(row: Schema) -> Schema:
    """The media types of a result made of rows, as `format` chooses."""
    return {
        JSONLINES: {"schema": array(row)},
        JSON: {"schema": array(row)},
        "text/csv": _ANY_TEXT,
        "application/xml": _ANY_TEXT,
        TEXT: _ANY_TEXT,
    }


def value_content(value: Schema) -> Schema:
    """A result that is one JSON value; with `format` it is the one row of a result."""
    one_row = array(value, minItems=1, maxItems=1)
    content = rows_content(value)
    content[JSONLINES] = {"schema": one_row}
    content[JSON] = {"schema": {"anyOf": [value, one_row]}}
    return content


def records_content(record: Schema, one: bool = False) -> Schema:
    """The media types of job data as `format` chooses: an array of records (JSON lines: one
    a line; msgpack: one packed record after another), or with `one` a single record."""
    return {
        JSONLINES: {"schema": array(record, minItems=1, maxItems=1) if one else array(record)},
        JSON: {"schema": record if one else array(record)},
        MSGPACK: _ANY_TEXT,
        "text/csv": _ANY_TEXT,
    }


def ok(description: str, content: Schema | None = None) -> Schema:
    answer: Schema = {"description": description}
    if content is not None:
        answer["content"] = content
    return answer


def json_ok(description: str, schema: Schema) -> Schema:
    return ok(description, {JSON: {"schema": schema}})


ERRORS: dict[str, Schema] = {
    "400": ok("malformed input: a plain-text reason naming the line or parameter",
              {TEXT: _ANY_TEXT}),
    "401": ok("no or bad credentials", {JSON: {"schema": ref("Error")}}),
    "403": ok("the credentials do not give access to this", {JSON: {"schema": ref("Error")}}),
    "404": ok("no such resource", {TEXT: _ANY_TEXT}),
    "408": ok("the request body came too slowly", {TEXT: _ANY_TEXT}),
    "409": ok("the job's state does not allow this change", {TEXT: _ANY_TEXT}),
    "413": ok("body or line over the size limit", {TEXT: _ANY_TEXT}),
    "429": ok("too many requests for this key (see Retry-After)", {TEXT: _ANY_TEXT}),
    "503": ok("the database is unreachable (see Retry-After)", {TEXT: _ANY_TEXT}),
}
#: the errors of a read, and those a request with a body adds
READ_ERRORS = ("400", "401", "403", "404", "429", "503")
WRITE_ERRORS = (*READ_ERRORS, "408", "409", "413")


def errors_of(codes: Sequence[str], shape: ErrorShape | None = None) -> dict[str, Schema]:
    if shape is not None:  # the descriptions of the error table, the body of the shape
        return {code: ok(ERRORS[code]["description"], {JSON: {"schema": ref(shape.name)}})
                for code in codes}
    return {code: {"$ref": f"#/components/responses/{code}"} for code in codes}


# -- request bodies -----------------------------------------------------------------------


def lines_body(item: Schema, description: str, required: bool = True) -> Schema:
    return {
        "description": description,
        "required": required,
        "content": {JSONLINES: {"schema": array(item)}, JSON: {"schema": item}},
    }


ANY_VALUE: Schema = {"description": "any JSON value"}


def value_body(schema: Schema, description: str, required: bool = True) -> Schema:
    return {"description": description, "required": required,
            "content": {JSON: {"schema": schema}}}


def form_body(description: str, required: Sequence[str],
              fields: dict[str, Schema] | None = None) -> Schema:
    """A urlencoded form: text fields (`fields` describes some), lists as repeated names."""
    return {"description": description, "required": True, "content": {FORM: {"schema": {
        "type": "object", "required": list(required), "properties": fields or {},
        "additionalProperties": {"type": "string"}}}}}


DESCRIPTION = """\
The JobQ protocol of Scrapy Cloud's storage service, self-hosted.

- Credentials: HTTP Basic with the API key as user name and an empty password, or the
  `apikey` query parameter; a job token (returned by push and startjob) sent as Basic
  `(JOBKEY, TOKEN)` may act on that job alone.
- JSON lines (`application/x-jsonlines`, one JSON value a line) are described by an array
  schema: item N of the array is line N. A request body may also be one JSON object (one line),
  or for `cancel` one JSON array.
- Results made of rows honour `format` (`jl`, `json`, `csv`, `xml`, `text`) or the `Accept`
  header; a result that is one value answers `application/json` unless a format is asked for,
  when the value becomes the only row. `gzip` when the client accepts it.
- What jobs produce (`items`, `logs`, `requests`) is read as JSON lines, JSON, msgpack
  (`application/x-msgpack`: one packed record after another) or CSV, streamed.
- Errors: 401 and 403 answer `{"error": ..., "message": ...}`; the others a plain-text reason.
  The app API (`/api/...`) and schedules answer every error as
  `{"status": "error", "message": ...}`.
"""


def _operation(route: Route) -> Schema:
    op: Schema = {"operationId": route.op_id, "summary": route.summary, "tags": [route.tag]}
    query = [p for p in route.params if p.where == "query"]
    if query:
        op["parameters"] = [param(p.ref) for p in query]
    if route.body.kind is not BodyKind.NONE:
        op["requestBody"] = route.body.describe
    codes = route.errors
    if codes is None:
        codes = READ_ERRORS if route.method == "GET" else WRITE_ERRORS
    op["responses"] = {**route.answers, **errors_of(codes, route.error_shape)}
    if route.access is Access.PUBLIC:
        op["security"] = []
    return op


def _parameters(routes: Sequence[Route]) -> dict[str, Schema]:
    """Every parameter of the table once, under its key; two different ones under one key
    are a mistake in the table."""
    found: dict[str, Param] = {}
    for route in routes:
        for p in route.params:
            if found.setdefault(p.ref, p) != p:
                raise ValueError(f"two different parameters named {p.ref!r}: give one a key")
    described = {}
    for key, p in found.items():
        entry: Schema = {"name": p.name, "in": p.where}
        if p.where == "path" or p.required:
            entry["required"] = True
        entry["schema"] = p.schema
        if p.where == "query" and p.schema.get("type") == "array":
            entry["style"] = "form"
            entry["explode"] = True
        entry["description"] = p.description
        described[key] = entry
    return described


def _paths(routes: Sequence[Route]) -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for route in routes:
        item = paths.setdefault(route.path, {})
        item[route.method.lower()] = _operation(route)
        in_path = [param(p.ref) for p in route.params if p.where == "path"]
        if in_path:
            item["parameters"] = in_path
    return paths


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document of `routes` (the server builds it once, at start-up)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobq",
            "version": "0.1.0",
            "summary": "Self-hosted JobQ: the Scrapy Cloud job queue protocol",
            "description": DESCRIPTION,
            "license": {"name": "BSD-3-Clause", "identifier": "BSD-3-Clause"},
        },
        "security": [{"basic": []}, {"apikey": []}],
        "tags": [{"name": t} for t in dict.fromkeys(r.tag for r in routes)],
        "paths": _paths(routes),
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic",
                          "description": "the API key as user name, empty password; or a job"
                                         " key and its job token"},
                "apikey": {"type": "apiKey", "in": "query", "name": "apikey"},
            },
            "schemas": {**SCHEMAS, **{r.error_shape.name: r.error_shape.schema
                                      for r in routes if r.error_shape is not None}},
            "parameters": _parameters(routes),
            "responses": ERRORS,
        },
    }
