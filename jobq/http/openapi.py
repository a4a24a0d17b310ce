"""The OpenAPI 3.1 description of the whole HTTP API, served at `/openapi.json`.

A plain Python data structure, built once. `tests/acceptance/test_openapi.py` checks that it
lists exactly the routes and methods of `jobq.http.routes.ROUTES`, and a schemathesis run
against a live server checks that the answers keep to it.

Conventions the document encodes:
- JSON lines (`application/x-jsonlines`, one JSON value a line) are described by an array
  schema: item N of the array is line N. Request bodies may also be sent as JSON: one object
  (one line), or for `cancel` one array.
- Endpoints answering rows honour `format` (`jl`, `json`, `csv`, `xml`, `text`), so their 200
  lists all five media types; those answering one value answer `application/json` unless a
  `format` is given, when the value becomes the only row.
- Errors: 401 and 403 answer the JSON `{"error": ..., "message": ...}`; every other error a
  plain-text reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobq.http import responses

JSON = "application/json"
JSONLINES = responses.JSONLINES
TEXT = "text/plain"

Schema = dict[str, Any]

# -- building blocks ------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


ID = {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}
TIMESTAMP = {"type": "integer", "description": "milliseconds since the UNIX epoch"}
NAME = {"type": "string", "minLength": 1, "maxLength": 255}
STATES = ["pending", "running", "finished", "deleted"]
LISTABLE = ["pending", "running", "finished"]
JOB_KEY_PATTERN = r"^[1-9][0-9]{0,17}/[1-9][0-9]{0,17}/[1-9][0-9]{0,17}$"
SPIDER_KEY_PATTERN = r"^[1-9][0-9]{0,17}/[1-9][0-9]{0,17}$"

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
    "CancelItem": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": ref("JobKey")},
        "additionalProperties": True,
    },
}

# -- parameters ---------------------------------------------------------------------------


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _query(name: str, schema: Schema, description: str) -> Schema:
    if schema.get("type") == "array":
        return {"name": name, "in": "query", "schema": schema, "style": "form",
                "explode": True, "description": description}
    return {"name": name, "in": "query", "schema": schema, "description": description}


COUNT = {"type": "integer", "minimum": 0}

PARAMETERS: dict[str, Schema] = {
    # path
    "pid": _path("pid", ID, "project id"),
    "sid": _path("sid", ID, "spider id"),
    "jobno": _path("jobno", ID, "job number"),
    "queue": _path("state", {"type": "string", "enum": LISTABLE}, "the queue to summarise"),
    "field": _path("field", {"type": "string"}, "a metadata field"),
    "setting": _path("name", {"type": "string"}, "a setting"),
    "spidername": _path("name", NAME, "a spider name"),
    "botgroup": _path("name", NAME, "a botgroup name"),
    # output shaping
    "format": _query("format", {"type": "string", "enum": list(responses.FORMATS)},
                     "output format (default: JSON lines, or as the Accept header says)"),
    "saveas": _query("saveas", {"type": "string"},
                     "adds Content-Disposition: attachment with this file name"),
    "fields": _query("fields", {"type": "string"},
                     "CSV: comma-separated field names (required with format=csv)"),
    "include_headers": _query("include_headers", {"type": "string"},
                              "CSV: 1/true/yes writes a header line"),
    "sep": _query("sep", {"type": "string", "minLength": 1, "maxLength": 1}, "CSV: separator"),
    "quote": _query("quote", {"type": "string", "minLength": 1, "maxLength": 1},
                    "CSV: quote character"),
    "escape": _query("escape", {"type": "string", "minLength": 1, "maxLength": 1},
                     "CSV: escape character (instead of doubling quotes)"),
    "lineend": _query("lineend", {"type": "string"},
                      "CSV: line end, escapes like \\r\\n allowed"),
    "meta": _query("meta", {"type": "string"}, "accepted for compatibility, ignored"),
    # list filters
    "state": _query("state", array({"type": "string", "enum": LISTABLE}),
                    "queue(s) to list; default finished"),
    "startts": _query("startts", {"type": "integer", "minimum": 0},
                      "only jobs with ts >= startts"),
    "endts": _query("endts", {"type": "integer", "minimum": 0}, "only jobs with ts < endts"),
    "stop": _query("stop", ref("JobKey"), "stop just before this job (exclusive)"),
    "count": _query("count", COUNT,
                    "at most this many rows (the server's --max-count caps it: 400 past it)"),
    "start": _query("start", COUNT, "skip this many rows first"),
    "spider": _query("spider", array({"type": "string"}), "only these spider names"),
    "has_tag": _query("has_tag", array({"type": "string"}), "only jobs having any of these tags"),
    "lacks_tag": _query("lacks_tag", array({"type": "string"}),
                        "only jobs having none of these tags"),
    "jobmeta": _query("jobmeta", array({"type": "string"}),
                      "return these metadata fields (rows then keep key, state, ts, elapsed,"
                      " tags and the fields asked for)"),
    "filter": _query("filter", array({"type": "string", "examples": [
                         '["state","=",["finished"]]', '["tags","haselement",["t1"]]']}),
                     'legacy JSON triples, e.g. ["state","=",["finished"]],'
                     ' ["tags","haselement",["t1"]]'),
    "key": _query("key", array(ref("JobKey")), "only these jobs"),
    # others
    "cancel_count": _query("count", {"type": "integer", "minimum": 1},
                           "admin: cancel up to this many pending jobs (no body then)"),
    "create": _query("create", {"type": "string"}, "1/true/yes: give a new name the next id"),
    "startafter": _query("startafter", {"type": "string"}, "accepted for compatibility, ignored"),
    "wait": _query("wait", {"type": "integer", "minimum": 0, "maximum": 60},
                   "seconds to wait for a pending job before answering 204"),
    "worker_id": _path("worker_id", {"type": "string", "minLength": 1, "maxLength": 64},
                       "a worker id (from POST workers)"),
}

OUTPUT = ["format", "saveas", "fields", "include_headers", "sep", "quote", "escape", "lineend",
          "meta"]
LIST_FILTERS = ["state", "startts", "endts", "stop", "count", "start", "spider", "has_tag",
                "lacks_tag", "jobmeta", "filter", "key"]

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


def errors_of(codes: Sequence[str]) -> dict[str, Schema]:
    return {code: {"$ref": f"#/components/responses/{code}"} for code in codes}


# -- request bodies -----------------------------------------------------------------------


def lines_body(item: Schema, description: str, required: bool = True) -> Schema:
    return {
        "description": description,
        "required": required,
        "content": {JSONLINES: {"schema": array(item)}, JSON: {"schema": item}},
    }


ANY_VALUE: Schema = {"description": "any JSON value"}


def value_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "required": True, "content": {JSON: {"schema": schema}}}


# -- operations ---------------------------------------------------------------------------


def operation(
    op_id: str,
    summary: str,
    tag: str,
    ok_responses: dict[str, Schema],
    params: Sequence[str] = (),
    body: Schema | None = None,
    errors: Sequence[str] = READ_ERRORS,
    public: bool = False,
) -> Schema:
    op: Schema = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = [param(p) for p in params]
    if body is not None:
        op["requestBody"] = body
    op["responses"] = {**ok_responses, **errors_of(errors)}
    if public:
        op["security"] = []
    return op


def path_item(params: Sequence[str], **methods: Schema) -> Schema:
    item: Schema = {name: op for name, op in methods.items()}
    if params:
        item["parameters"] = [param(p) for p in params]
    return item


def _build_paths() -> dict[str, Schema]:
    rows = rows_content
    job = ["pid", "sid", "jobno"]
    summary_ok = {"200": ok("one line per queue", rows(ref("SummaryQueue")))}
    summary_params = ["count", "start", "jobmeta", *OUTPUT]
    meta_ok = {"200": ok("done: an empty body")}
    setting_value = {"200": ok("the setting's value", value_content(ANY_VALUE))}
    last_ok = {"200": ok("the newest job of each spider", rows(ref("JobRow")))}
    last_params = ["count", "start", "startafter", *OUTPUT]
    health = {"status": {"type": "string", "const": "ok"}}
    return {
        "/openapi.json": path_item([], get=operation(
            "openapi", "This description", "server",
            {"200": json_ok("the OpenAPI 3.1 document", {"type": "object"})},
            errors=[], public=True,
        )),
        "/system/ts": path_item([], get=operation(
            "system_ts", "The server time (ms since the epoch)", "server",
            {"200": json_ok("the time", {"type": "integer"})}, errors=[], public=True,
        )),
        "/healthz": path_item([], get=operation(
            "healthz", "Liveness", "server",
            {"200": json_ok("the process answers", {
                "type": "object", "required": ["status"], "properties": health})},
            errors=[], public=True,
        )),
        "/readyz": path_item([], get=operation(
            "readyz", "Readiness: the database answers", "server",
            {"200": json_ok("ready", {
                "type": "object", "required": ["status", "database"],
                "properties": {**health, "database": {"type": "string"}}})},
            errors=["503"], public=True,
        )),
        "/metrics": path_item([], get=operation(
            "metrics", "Prometheus metrics", "server",
            {"200": ok("the Prometheus text exposition format", {TEXT: _ANY_TEXT})},
            errors=["503"], public=True,
        )),
        # -- the queues
        "/jobq/{pid}/list": path_item(["pid"], get=operation(
            "list_jobs", "Jobs of the project, most recent first", "jobq",
            {"200": ok("one line per job", rows(ref("JobRow")))},
            [*LIST_FILTERS, *OUTPUT],
        )),
        "/jobq/{pid}/count": path_item(["pid"], get=operation(
            "count", "How many jobs match the list filters", "jobq",
            {"200": ok("the number of jobs", value_content({"type": "integer", "minimum": 0}))},
            [*LIST_FILTERS, *OUTPUT],
        )),
        "/jobq/{pid}/jobsummary": path_item(["pid"], get=operation(
            "jobsummary", "The jobs named by `key`, with the `jobmeta` fields", "jobq",
            {"200": ok("one line per key found", rows(ref("JobRow")))},
            ["key", "jobmeta", *OUTPUT],
        )),
        "/jobq/{pid}/summary": path_item(["pid"], get=operation(
            "summary", "The three queues of the project", "jobq", summary_ok, summary_params,
        )),
        "/jobq/{pid}/summary/{state}": path_item(["pid", "queue"], get=operation(
            "summary_queue", "One queue of the project", "jobq", summary_ok, summary_params,
        )),
        "/jobq/{pid}/{sid}/summary": path_item(["pid", "sid"], get=operation(
            "spider_summary", "The three queues of one spider", "jobq", summary_ok,
            summary_params,
        )),
        "/jobq/{pid}/{sid}/summary/{state}": path_item(["pid", "sid", "queue"], get=operation(
            "spider_summary_queue", "One queue of one spider", "jobq", summary_ok,
            summary_params,
        )),
        "/jobq/{pid}/push": path_item(["pid"], post=operation(
            "push", "Create jobs, one a line", "jobq",
            {"200": ok("one line per input line, in order", rows(ref("PushResult")))},
            OUTPUT, lines_body(ref("NewJob"), "one job a line"), WRITE_ERRORS,
        )),
        "/jobq/{pid}/startjob": path_item(["pid"], post=operation(
            "startjob", "Claim the next pending job", "jobq",
            {"200": json_ok("the claimed job, now running", ref("StartedJob")),
             "204": ok("no pending job")},
            ["wait"], lines_body(ref("StartParams"), "at most one object of start parameters",
                           required=False), WRITE_ERRORS,
        )),
        "/jobq/{pid}/update": path_item(["pid"], post=operation(
            "update", "Change states and metadata", "jobq",
            {"200": ok("one line per job changed", rows(ref("UpdateResult")))},
            OUTPUT, lines_body(ref("JobUpdate"), "one update a line"), WRITE_ERRORS,
        )),
        "/jobq/{pid}/cancel": path_item(["pid"], post=operation(
            "cancel", "Cancel jobs", "jobq",
            {"200": json_ok("how many jobs were pending or running", {
                "type": "object", "required": ["count"],
                "properties": {"count": {"type": "integer", "minimum": 0}},
                "additionalProperties": False})},
            ["cancel_count"],
            {"description": "the jobs to cancel: a JSON array or JSON lines (none with count)",
             "required": False,
             "content": {JSON: {"schema": array(ref("CancelItem"))},
                         JSONLINES: {"schema": array(ref("CancelItem"))}}},
            WRITE_ERRORS,
        )),
        "/jobq/{pid}/{sid}/{jobno}/cancel": path_item(job, post=operation(
            "cancel_job", "Cancel one job", "jobq",
            {"200": json_ok("1 when the job was pending or running, else 0", {
                "type": "object", "required": ["count"],
                "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 1}},
                "additionalProperties": False})},
            errors=WRITE_ERRORS,
        )),
        # -- job metadata
        "/jobs/{pid}/{sid}/{jobno}": path_item(
            job,
            get=operation("get_job_meta", "The job's metadata", "jobs",
                          {"200": ok("the metadata, one line", rows(ref("JobMeta")))}, OUTPUT),
            post=operation("post_job_meta", "Merge fields into the job's metadata", "jobs",
                           meta_ok, [], lines_body(ref("MetaFields"), "fields to set",
                                                   required=False), WRITE_ERRORS),
            delete=operation("delete_job", "Remove the job entirely", "jobs", meta_ok,
                             errors=WRITE_ERRORS),
        ),
        "/jobs/{pid}/{sid}/{jobno}/{field}": path_item(
            [*job, "field"],
            get=operation("get_job_field", "One metadata field", "jobs",
                          {"200": ok("the field's value", value_content(ANY_VALUE))}, OUTPUT),
            post=operation("post_job_field", "Set one metadata field", "jobs", meta_ok, [],
                           value_body(ANY_VALUE, "the field's new value"), WRITE_ERRORS),
            delete=operation("delete_job_field", "Remove one metadata field", "jobs", meta_ok,
                             errors=WRITE_ERRORS),
        ),
        # -- spiders, projects, botgroups
        "/ids/{pid}/spider/{name}": path_item(["pid", "spidername"], get=operation(
            "spider_id", "The id of a spider name", "projects",
            {"200": ok("the id, or null for an unknown name without create",
                       value_content({"anyOf": [ID, {"type": "null"}]}))},
            ["create", *OUTPUT],
        )),
        "/projects/jobsummaries": path_item([], get=operation(
            "project_jobsummaries", "Job counts of every project the key can see", "projects",
            {"200": ok("one summary per project", value_content(array(ref("ProjectSummary"))))},
            OUTPUT,
        )),
        "/projects/{pid}/jobsummary": path_item(["pid"], get=operation(
            "project_jobsummary", "Job counts of the project", "projects",
            {"200": ok("the counts", value_content(ref("ProjectSummary")))}, OUTPUT,
        )),
        "/projects/{pid}/settings": path_item(
            ["pid"],
            get=operation("get_settings", "The project's settings", "projects",
                          {"200": ok("the settings", value_content({"type": "object"}))},
                          OUTPUT),
            post=operation("post_settings", "Merge settings", "projects", meta_ok, [],
                           lines_body({"type": "object", "properties": {
                               "botgroups": array(NAME)}}, "settings to set",
                               required=False), WRITE_ERRORS),
        ),
        "/projects/{pid}/settings/{name}": path_item(
            ["pid", "setting"],
            get=operation("get_setting", "One setting", "projects", setting_value, OUTPUT),
            post=operation("post_setting", "Set one setting", "projects", meta_ok, [],
                           value_body(ANY_VALUE, "the setting's new value"), WRITE_ERRORS),
            delete=operation("delete_setting", "Remove one setting", "projects", meta_ok,
                             errors=WRITE_ERRORS),
        ),
        "/spiders/{pid}/lastjobsummary": path_item(["pid"], get=operation(
            "lastjobsummary", "The newest job of each spider", "projects", last_ok, last_params,
        )),
        "/spiders/{pid}/{sid}/lastjobsummary": path_item(["pid", "sid"], get=operation(
            "spider_lastjobsummary", "The newest job of one spider", "projects", last_ok,
            last_params,
        )),
        "/botgroups/{name}/max_running": path_item(["botgroup"], post=operation(
            "set_max_running", "Cap the running jobs of a botgroup (admin)", "botgroups",
            {"200": json_ok("done", {"type": "null"})}, [],
            value_body({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
                       "the cap, or null for none"), WRITE_ERRORS,
        )),
        "/botgroups/{name}": path_item(["botgroup"], delete=operation(
            "delete_botgroup", "Forget a botgroup's cap (admin)", "botgroups",
            {"200": json_ok("done", {"type": "null"})}, errors=WRITE_ERRORS,
        )),
    }


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
- Errors: 401 and 403 answer `{"error": ..., "message": ...}`; the others a plain-text reason.
"""


# -- workers and leases (issue 10) ------------------------------------------------------------

WORKER_INFO: Schema = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {
        "name": NAME, "host": {"type": "string", "maxLength": 255},
        "slots": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "botgroups": array(NAME), "projects": array(ID),
        "version": {"type": "string", "maxLength": 255},
    },
}
INTERVALS: Schema = {
    "heartbeat_interval": {"type": "number"}, "worker_timeout": {"type": "number"},
    "cancel_timeout": {"type": "number"},
}
WORKER_ROW: Schema = {
    "type": "object",
    "required": ["id", "name", "state", "last_heartbeat", "jobs"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "host": {"type": "string"},
        "slots": {"type": "integer"}, "botgroups": array({"type": "string"}),
        "projects": array({"type": "integer"}), "version": {"type": "string"},
        "registered_time": TIMESTAMP, "last_heartbeat": TIMESTAMP,
        "state": {"type": "string", "enum": ["active", "lost"]},
        "lost_time": {"anyOf": [TIMESTAMP, {"type": "null"}]}, "jobs": array(ref("JobKey")),
    },
}
JOB_ANSWER: Schema = {
    "type": "object", "required": ["key", "action"],
    "properties": {
        "key": ref("JobKey"), "action": {"type": "string", "enum": ["continue", "stop"]},
        "finish": {"type": "boolean", "description": "report the outcome (false: the job is"
                                                     " not leased to this worker)"},
        "reason": {"type": "string", "description": "the close_reason to finish with"},
        "message": {"type": "string"},
    },
}


def _worker_paths() -> dict[str, Schema]:
    return {
        "/workers": path_item(
            [],
            post=operation(
                "register_worker", "Register a worker", "workers",
                {"200": json_ok("its id and the heartbeat interval", {
                    "type": "object", "required": ["id", *INTERVALS],
                    "properties": {"id": {"type": "string"}, **INTERVALS}})},
                [], value_body(WORKER_INFO, "the worker"), WRITE_ERRORS,
            ),
            get=operation("list_workers", "The registered workers and their jobs (admin)",
                          "workers", {"200": json_ok("the workers", array(WORKER_ROW))}),
        ),
        "/workers/{worker_id}/heartbeat": path_item(["worker_id"], post=operation(
            "heartbeat", "Renew the leases of the jobs the worker runs", "workers",
            {"200": json_ok("what the server wants of each job", {
                "type": "object", "required": ["id", "jobs"],
                "properties": {"id": {"type": "string"}, "jobs": array(JOB_ANSWER),
                               **INTERVALS}})},
            [], {"description": "the jobs the worker runs", "required": False,
                 "content": {JSON: {"schema": {
                     "type": "object", "additionalProperties": False,
                     "properties": {"jobs": array(ref("JobKey"), maxItems=10_000)}}}}},
            WRITE_ERRORS,
        )),
        "/workers/{worker_id}": path_item(["worker_id"], delete=operation(
            "unregister_worker", "Forget a worker that runs no job", "workers",
            {"200": json_ok("done", {"type": "null"})}, errors=WRITE_ERRORS,
        )),
    }


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once; do not mutate)."""
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
        "tags": [{"name": t} for t in ("jobq", "jobs", "projects", "botgroups", "workers",
                                        "server")],
        "paths": {**_build_paths(), **_worker_paths()},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic",
                          "description": "the API key as user name, empty password; or a job"
                                         " key and its job token"},
                "apikey": {"type": "apiKey", "in": "query", "name": "apikey"},
            },
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": ERRORS,
        },
    }


async def endpoint(request: Request) -> Response:
    return responses.json_response(document())
