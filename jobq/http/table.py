"""The route table: every route of the server, declared once.

Each `Route` says its method and path, its parameters (with their types and limits), the
kind of body it reads, who may call it, what it answers and the handler. From this one
list the server compiles, at start-up, its dispatcher, the parsing and checking of
parameters and bodies, the checks of credentials (`jobq.http.dispatch`), and the OpenAPI
document served at /openapi.json (`jobq.http.openapi`). Nothing else routes.

Adding a route is one declaration here plus a handler:

    # jobq/http/endpoints/greetings.py
    async def hello(call: Call) -> Reply:
        who, project = call.who, call.args["pid"]   # the caller; parsed parameters
        times = call.args.get("times") or 1
        return responses.json_response(await call.queue.greet(who, project, times))

    # here, in ROUTES
    Route("GET", "/hello/{pid}", greetings.hello, "hello", "Say hello", "projects",
          {"200": json_ok("a greeting", {"type": "string"})},
          params=[PID, spec.integer("times", "how many times", minimum=1)]),

- Path parameters must be declared (`spec.path`, with a parse function); a query parameter
  that is not declared (nor one of the common ones: `apikey`, `format`, ...) is a 400.
- `spec.integer` parameters arrive parsed in `call.args` (past `maximum` they are clamped,
  or with `strict=True` refused with a 400, and the OpenAPI schema gives the maximum);
  text ones are read from `call.query` by the handler (`get`, `getlist`).
- `spec.text(..., required=True)`: a query parameter the request must give (400 naming it
  otherwise; documented as required). `any_query=True`: query parameters not declared are
  accepted, for routes reading a form from the query (`call.query.items()`).
- `body=`: `LINES` (JSON lines: `call.body` is the list), `VALUE` (one JSON value; with a
  requestBody saying `"required": False`, an empty body is None), `FORM` (urlencoded:
  `call.body` is the list of (name, value) pairs; multipart is a 400), `RAW` (`call.raw`,
  the handler parses: e.g. a body that may be empty or of several shapes); sizes, timeouts
  and JSON errors are handled before the handler runs.
- `access=`: `PUBLIC` (no credentials), `CALLER` (default: `call.who` is the caller; the
  queue service checks what it reaches), `JOB` (the caller must reach the job the path
  names with `pid`, `sid`, `jobno`, its first parameters: checked before the query and
  body are read, so a stranger gets 403 and never a 400 about its request) or `ADMIN`.
- A handler answers a `Reply`: a body, or for an answer too large to hold in memory a
  `stream=` (an async generator of the parts; sent chunked). The first part is produced
  before the status goes out, so a failure there still answers its own error; a failure
  later cuts the connection (the client sees an unfinished body). HEAD sends no part.
- One handler may serve several routes: bind what tells them apart with
  `functools.partial` (the job-data routes bind their kind: `partial(jobdata.read, kind)`).
- Methods: GET (which answers HEAD too), POST, PATCH, DELETE; the same path may have
  several, each its own `Route`.
- `error_shape=`: a `spec.ErrorShape` renders every error of the route (a bad parameter,
  401, 429, 503, a 500 too) as a JSON body of its own, e.g. the app API's
  `{"status": "error", "message": ...}`; status, message and headers stay those of
  `jobq.http.errors`, and the OpenAPI document describes the errors with its schema.
- Routes are tried in the order of this list within a first path segment: put busy routes
  first, and literal segments before parameters where both could match.
- What handlers share (a service over the storage) is a field of `jobq.http.call.Services`,
  made in `jobq.http.app.JobqApp._start`; a background task (the scheduler of periodic
  jobs, the lease reaper) goes into `JobqApp.tasks` there, and is cancelled at shutdown
  before the storage closes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from jobq.core.workers import MAX_WAIT
from jobq.domain.jobs import State, parse_id
from jobq.domain.records_data import Kind, parse_index
from jobq.http import openapi, spec
from jobq.http.endpoints import app_api, jobdata, jobq, jobs, misc, ops, schedules, workers
from jobq.http.openapi import (
    ANY_VALUE,
    ID,
    JSONLINES,
    LISTABLE,
    NAME,
    array,
    form_body,
    json_ok,
    lines_body,
    ok,
    records_content,
    ref,
    rows_content,
    value_body,
    value_content,
)
from jobq.http.params import MAX_TS
from jobq.http.record_formats import MEDIA_TYPES
from jobq.http.responses import FORMATS
from jobq.http.spec import Access, Body, BodyKind, Param, Route

# -- parameters ---------------------------------------------------------------------------


def _id(what: str) -> Callable[[str], int]:
    return lambda text: parse_id(text, what)


def _same(text: str) -> str:
    return text


PID = spec.path("pid", ID, "project id", _id("project id"))
SID = spec.path("sid", ID, "spider id", _id("spider id"))
JOBNO = spec.path("jobno", ID, "job number", _id("job number"))
QUEUE = spec.path("state", {"type": "string", "enum": LISTABLE}, "the queue to summarise",
                  lambda text: State.parse(text, "queue"), key="queue")
FIELD = spec.path("field", {"type": "string"}, "a metadata field", _same)
SETTING = spec.path("name", {"type": "string"}, "a setting", _same, key="setting")
SPIDER_NAME = spec.path("name", NAME, "a spider name", _same, key="spidername")
BOTGROUP = spec.path("name", NAME, "a botgroup name", _same, key="botgroup")
WORKER_ID = spec.path("worker_id", {"type": "string", "minLength": 1,
                                     "maxLength": workers.MAX_WORKER_ID},
                      "a worker id (from POST workers)", workers.parse_worker_id)
JOB = [PID, SID, JOBNO]

SAVEAS = spec.text("saveas", "adds Content-Disposition: attachment with this file name")
CSV = [
    spec.text("fields", "CSV: comma-separated field names (required with format=csv)"),
    spec.text("include_headers", "CSV: 1/true/yes writes a header line"),
    spec.text("sep", "CSV: separator", {"type": "string", "minLength": 1, "maxLength": 1}),
    spec.text("quote", "CSV: quote character",
              {"type": "string", "minLength": 1, "maxLength": 1}),
    spec.text("escape", "CSV: escape character (instead of doubling quotes)",
              {"type": "string", "minLength": 1, "maxLength": 1}),
    spec.text("lineend", "CSV: line end, escapes like \\r\\n allowed"),
]
#: output shaping, which every route answering rows or a value takes
OUTPUT = [
    spec.text("format", "output format (default: JSON lines, or as the Accept header says)",
              {"type": "string", "enum": list(FORMATS)}),
    SAVEAS,
    *CSV,
    spec.text("meta", "accepted for compatibility, ignored"),
]

COUNT = spec.integer("count", "at most this many rows (the server's --max-count caps it: 400"
                              " past it)")
START = spec.integer("start", "skip this many rows first")
JOBMETA = spec.text("jobmeta", "return these metadata fields (rows then keep key, state, ts,"
                               " elapsed, tags and the fields asked for)", many=True)
KEYS = spec.text("key", "only these jobs", ref("JobKey"), many=True)
LIST_FILTERS = [
    spec.text("state", "queue(s) to list; default finished",
              {"type": "string", "enum": LISTABLE}, many=True),
    spec.integer("startts", "only jobs with ts >= startts", maximum=MAX_TS),
    spec.integer("endts", "only jobs with ts < endts", maximum=MAX_TS),
    spec.text("stop", "stop just before this job (exclusive)", ref("JobKey")),
    COUNT,
    START,
    spec.text("spider", "only these spider names", many=True),
    spec.text("has_tag", "only jobs having any of these tags", many=True),
    spec.text("lacks_tag", "only jobs having none of these tags", many=True),
    JOBMETA,
    spec.text("filter", 'legacy JSON triples, e.g. ["state","=",["finished"]],'
                        ' ["tags","haselement",["t1"]]',
              {"type": "string", "examples": ['["state","=",["finished"]]',
                                              '["tags","haselement",["t1"]]']}, many=True),
    KEYS,
]
CANCEL_COUNT = spec.integer("count", "admin: cancel up to this many pending jobs (no body then)",
                            minimum=1, key="cancel_count")
WAIT = spec.integer("wait", "seconds to wait for a pending job before answering 204",
                    maximum=int(MAX_WAIT), strict=True)
CREATE = spec.text("create", "1/true/yes: give a new name the next id")
STARTAFTER = spec.text("startafter", "accepted for compatibility, ignored")
#: the app API names the project in its form: the query of a GET
APP_PROJECT = spec.text("project", "project id", ID, required=True)
SCHEDULE = [PID, spec.path("id", ID, "schedule id", _id("schedule id"), key="schedule_id")]

# job data: the keys tell them from the parameters of the same name of the queue's routes
INDEX = spec.path("index", {"type": "integer", "minimum": 0}, "the record's index",
                  lambda text: parse_index(text, "index"), key="record_index")
DATA_FORMAT = spec.text("format", "output format (default: JSON lines, or as the Accept"
                                  " header says)",
                        {"type": "string", "enum": list(MEDIA_TYPES)}, key="data_format")
DATA_META = spec.text("meta", "meta fields to add to each record (repeated, or comma-separated)",
                      {"type": "string", "enum": ["_key", "_ts"]}, many=True, key="data_meta")
NODATA = spec.text("nodata", "1/true/yes: only the meta fields")
#: how a read shapes its records (the CSV options as for the queue's rows)
RECORD_OUTPUT = [DATA_FORMAT, DATA_META, NODATA, *CSV]
DATA_READ = [
    spec.text("start", "start at this record", ref("RecordKey"), key="data_start"),
    spec.text("startafter", "start after this record", ref("RecordKey"),
              key="data_startafter"),
    spec.integer("count", "at most this many records", key="data_count"),
    Param("index", array({"type": "integer", "minimum": 0}, maxItems=jobdata.MAX_INDEXES),
          "only these records, in this order", key="data_index"),
    spec.text("filter", 'JSON triples [field, operator, [values]], e.g. ["level", ">=", [30]]',
              many=True, key="data_filter"),
    spec.integer("startts", "only records written at or after this time (ms)",
                 key="data_startts"),
    spec.integer("endts", "only records written before this time (ms)", key="data_endts"),
    *RECORD_OUTPUT,
    SAVEAS,
]
BATCH_START = spec.integer("start", "the index of the batch's first record (default: the"
                                    " next one); records stored already are skipped, so a"
                                    " retried batch is stored once", key="batch_start")

# -- bodies -------------------------------------------------------------------------------


def _lines(item: openapi.Schema, description: str, required: bool = True) -> Body:
    return Body(BodyKind.LINES, lines_body(item, description, required))


def _value(schema: openapi.Schema, description: str, name: str,
           name_from_path: bool = False) -> Body:
    return Body(BodyKind.VALUE, value_body(schema, description), name, name_from_path)


CANCEL_BODY = Body(BodyKind.RAW, {
    "description": "the jobs to cancel: a JSON array or JSON lines (none with count)",
    "required": False,
    "content": {openapi.JSON: {"schema": array(ref("CancelItem"))},
                openapi.JSONLINES: {"schema": array(ref("CancelItem"))}},
})

RECORDS_BODY = Body(BodyKind.RAW, lines_body(
    {"type": "object"}, "the records, one JSON object a line (gzip: with Content-Encoding:"
                        " gzip)"))


#: the app API's form fields that are ids and keys (all are text in a form)
APP_FIELDS: dict[str, openapi.Schema] = {
    "project": {"type": "string", "pattern": r"^[1-9][0-9]{0,17}$"},
    "spider": NAME,
    "job": ref("JobKey"),
}


def _form(*required: str) -> Body:
    return Body(BodyKind.FORM, form_body(
        "form fields (also taken from the query); lists repeat their name, objects are"
        " JSON text", required, {name: APP_FIELDS[name] for name in required}))


SPIDER_TAGS_BODY = Body(BodyKind.VALUE, value_body(
    {"type": "object", "properties": {"add": array(NAME), "remove": array(NAME)}},
    "tags to add and remove"))
SCHEDULE_BODY = Body(BodyKind.VALUE, value_body(ref("ScheduleFields"), "the schedule"))
SCHEDULE_CHANGE = Body(BodyKind.VALUE, value_body(
    ref("ScheduleFields"), "the fields to change (none: nothing changes)", required=False))

HEARTBEAT_BODY = Body(BodyKind.RAW, {
    "description": "the jobs the worker runs (an empty body: none)",
    "required": False,
    "content": {openapi.JSON: {"schema": ref("Heartbeat")}},
})

# -- answers ------------------------------------------------------------------------------

SUMMARY_OK = {"200": ok("one line per queue", rows_content(ref("SummaryQueue")))}
META_OK = {"200": ok("done: an empty body")}
LAST_OK = {"200": ok("the newest job of each spider", rows_content(ref("JobRow")))}
HEALTH = {"status": {"type": "string", "const": "ok"}}
COUNT_OF = {"type": "object", "required": ["count"],
            "properties": {"count": {"type": "integer", "minimum": 0}},
            "additionalProperties": False}
ONE_OR_NONE = {**COUNT_OF, "properties": {"count": {"type": "integer", "minimum": 0,
                                                    "maximum": 1}}}
DONE = {"200": json_ok("done", {"type": "null"})}



def _app_ok(description: str = "done", status: str = "200", **properties: openapi.Schema
            ) -> dict[str, openapi.Schema]:
    """The app API's answer: a JSON object with `status: ok` and these fields."""
    return {status: json_ok(description, {
        "type": "object", "required": ["status"],
        "properties": {"status": {"const": "ok"}, **properties}})}


JOBID_OK = _app_ok(jobid=ref("JobKey"))
COUNTED_OK = _app_ok(count={"type": "integer"})
SCHEDULE_OK = _app_ok(schedule=ref("Schedule"))

SUMMARY = [COUNT, START, JOBMETA, *OUTPUT]
LAST = [COUNT, START, STARTAFTER, *OUTPUT]



def _job_data(kind: Kind) -> list[Route]:
    """The routes of one kind of job data (jobq/http/endpoints/jobdata.py), alike for the
    three kinds."""
    name = kind.value
    path = f"/{name}/{{pid}}/{{sid}}/{{jobno}}"
    return [
        Route("GET", path, partial(jobdata.read, kind), f"{name}_read",
              f"The job's {name}, streamed", "jobdata",
              {"200": ok(f"the {name}", records_content(ref("Record")))},
              [*JOB, *DATA_READ], access=Access.JOB),
        Route("POST", path, partial(jobdata.write, kind), f"{name}_write",
              f"Store a batch of {name} (a running job's own token, a key of its project,"
              " or an admin key, which may write to a job that is not running)", "jobdata",
              {"200": ok("stored: an empty body")}, [*JOB, BATCH_START], RECORDS_BODY,
              Access.JOB),
        # before `{index}`, which would take "stats" for an index
        Route("GET", path + "/stats", partial(jobdata.stats, kind), f"{name}_stats",
              f"Counts and totals of the job's {name}", "jobdata",
              {"200": json_ok("counts and totals", ref("RecordStats"))}, JOB,
              access=Access.JOB),
        Route("GET", path + "/{index}", partial(jobdata.one, kind), f"{name}_one",
              f"One of the job's {name}", "jobdata",
              {"200": ok("the record", records_content(ref("Record"), one=True))},
              [*JOB, INDEX, *RECORD_OUTPUT], access=Access.JOB),
    ]


# -- the table ----------------------------------------------------------------------------

ROUTES: list[Route] = [
    # the queues; the busiest routes first
    Route("POST", "/jobq/{pid}/push", jobq.push, "push", "Create jobs, one a line", "jobq",
          {"200": ok("one line per input line, in order", rows_content(ref("PushResult")))},
          [PID, *OUTPUT], _lines(ref("NewJob"), "one job a line")),
    Route("POST", "/jobq/{pid}/startjob", jobq.startjob, "startjob",
          "Claim the next pending job", "jobq",
          {"200": json_ok("the claimed job, now running", ref("StartedJob")),
           "204": ok("no pending job")},
          [PID, WAIT], _lines(ref("StartParams"), "at most one object of start parameters",
                              required=False)),
    Route("POST", "/jobq/{pid}/update", jobq.update, "update", "Change states and metadata",
          "jobq", {"200": ok("one line per job changed", rows_content(ref("UpdateResult")))},
          [PID, *OUTPUT], _lines(ref("JobUpdate"), "one update a line")),
    Route("GET", "/jobq/{pid}/list", jobq.list_jobs, "list_jobs",
          "Jobs of the project, most recent first", "jobq",
          {"200": ok("one line per job", rows_content(ref("JobRow")))},
          [PID, *LIST_FILTERS, *OUTPUT]),
    Route("GET", "/jobq/{pid}/count", jobq.count, "count",
          "How many jobs match the list filters", "jobq",
          {"200": ok("the number of jobs", value_content({"type": "integer", "minimum": 0}))},
          [PID, *LIST_FILTERS, *OUTPUT]),
    Route("POST", "/jobq/{pid}/cancel", jobq.cancel, "cancel", "Cancel jobs", "jobq",
          {"200": json_ok("how many jobs were pending or running", COUNT_OF)},
          [PID, CANCEL_COUNT], CANCEL_BODY),
    Route("GET", "/jobq/{pid}/jobsummary", jobq.jobsummary, "jobsummary",
          "The jobs named by `key`, with the `jobmeta` fields", "jobq",
          {"200": ok("one line per key found", rows_content(ref("JobRow")))},
          [PID, KEYS, JOBMETA, *OUTPUT]),
    Route("GET", "/jobq/{pid}/summary", jobq.summary, "summary",
          "The three queues of the project", "jobq", SUMMARY_OK, [PID, *SUMMARY]),
    Route("GET", "/jobq/{pid}/summary/{state}", jobq.summary, "summary_queue",
          "One queue of the project", "jobq", SUMMARY_OK, [PID, QUEUE, *SUMMARY]),
    Route("GET", "/jobq/{pid}/{sid}/summary", jobq.summary, "spider_summary",
          "The three queues of one spider", "jobq", SUMMARY_OK, [PID, SID, *SUMMARY]),
    Route("GET", "/jobq/{pid}/{sid}/summary/{state}", jobq.summary, "spider_summary_queue",
          "One queue of one spider", "jobq", SUMMARY_OK, [PID, SID, QUEUE, *SUMMARY]),
    Route("POST", "/jobq/{pid}/{sid}/{jobno}/cancel", jobq.cancel_job, "cancel_job",
          "Cancel one job", "jobq",
          {"200": json_ok("1 when the job was pending or running, else 0", ONE_OR_NONE)}, JOB),
    # job metadata
    Route("GET", "/jobs/{pid}/{sid}/{jobno}", jobs.get_meta, "get_job_meta",
          "The job's metadata", "jobs",
          {"200": ok("the metadata, one line", rows_content(ref("JobMeta")))},
          [*JOB, *OUTPUT]),
    Route("POST", "/jobs/{pid}/{sid}/{jobno}", jobs.post_meta, "post_job_meta",
          "Merge fields into the job's metadata", "jobs", META_OK, JOB,
          _lines(ref("MetaFields"), "fields to set", required=False)),
    Route("DELETE", "/jobs/{pid}/{sid}/{jobno}", jobs.delete, "delete_job",
          "Remove the job entirely", "jobs", META_OK, JOB),
    Route("GET", "/jobs/{pid}/{sid}/{jobno}/{field}", jobs.get_meta, "get_job_field",
          "One metadata field", "jobs",
          {"200": ok("the field's value", value_content(ANY_VALUE))}, [*JOB, FIELD, *OUTPUT]),
    Route("POST", "/jobs/{pid}/{sid}/{jobno}/{field}", jobs.post_meta, "post_job_field",
          "Set one metadata field", "jobs", META_OK, [*JOB, FIELD],
          _value(ANY_VALUE, "the field's new value", "field", name_from_path=True)),
    Route("DELETE", "/jobs/{pid}/{sid}/{jobno}/{field}", jobs.delete, "delete_job_field",
          "Remove one metadata field", "jobs", META_OK, [*JOB, FIELD]),
    # what jobs produce
    *_job_data(Kind.ITEMS),
    *_job_data(Kind.LOGS),
    *_job_data(Kind.REQUESTS),
    # spiders, projects, botgroups
    Route("GET", "/ids/{pid}/spider/{name}", misc.ids_spider, "spider_id",
          "The id of a spider name", "projects",
          {"200": ok("the id, or null for an unknown name without create",
                     value_content({"anyOf": [ID, {"type": "null"}]}))},
          [PID, SPIDER_NAME, CREATE, *OUTPUT]),
    Route("GET", "/projects/jobsummaries", misc.project_jobsummaries, "project_jobsummaries",
          "Job counts of every project the key can see", "projects",
          {"200": ok("one summary per project",
                     value_content(array(ref("ProjectSummary"))))}, OUTPUT),
    Route("GET", "/projects/{pid}/jobsummary", misc.project_jobsummary, "project_jobsummary",
          "Job counts of the project", "projects",
          {"200": ok("the counts", value_content(ref("ProjectSummary")))}, [PID, *OUTPUT]),
    Route("GET", "/projects/{pid}/settings", misc.get_settings, "get_settings",
          "The project's settings", "projects",
          {"200": ok("the settings", value_content({"type": "object"}))}, [PID, *OUTPUT]),
    Route("POST", "/projects/{pid}/settings", misc.post_settings, "post_settings",
          "Merge settings", "projects", META_OK, [PID],
          _lines({"type": "object", "properties": {"botgroups": array(NAME)}},
                 "settings to set", required=False)),
    Route("GET", "/projects/{pid}/settings/{name}", misc.get_settings, "get_setting",
          "One setting", "projects",
          {"200": ok("the setting's value", value_content(ANY_VALUE))},
          [PID, SETTING, *OUTPUT]),
    Route("POST", "/projects/{pid}/settings/{name}", misc.post_settings, "post_setting",
          "Set one setting", "projects", META_OK, [PID, SETTING],
          _value(ANY_VALUE, "the setting's new value", "name", name_from_path=True)),
    Route("DELETE", "/projects/{pid}/settings/{name}", misc.delete_setting, "delete_setting",
          "Remove one setting", "projects", META_OK, [PID, SETTING]),
    Route("GET", "/spiders/{pid}/lastjobsummary", misc.lastjobsummary, "lastjobsummary",
          "The newest job of each spider", "projects", LAST_OK, [PID, *LAST]),
    Route("GET", "/spiders/{pid}/{sid}/lastjobsummary", misc.lastjobsummary,
          "spider_lastjobsummary", "The newest job of one spider", "projects", LAST_OK,
          [PID, SID, *LAST]),
    Route("POST", "/botgroups/{name}/max_running", misc.set_max_running, "set_max_running",
          "Cap the running jobs of a botgroup (admin)", "botgroups", DONE, [BOTGROUP],
          _value({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
                 "the cap, or null for none", "max_running"), Access.ADMIN),
    Route("DELETE", "/botgroups/{name}", misc.delete_botgroup, "delete_botgroup",
          "Forget a botgroup's cap (admin)", "botgroups", DONE, [BOTGROUP],
          access=Access.ADMIN),
    # the app API (Scrapy Cloud's dash endpoints), in its own error shape; it takes any
    # query parameter, as the hosted one does (a form may come in the query as well as in
    # the body)
    Route("POST", "/api/run.json", app_api.run, "app_run", "Schedule a job (app API)", "app",
          JOBID_OK, body=_form("project", "spider"), error_shape=app_api.ERRORS,
          any_query=True),
    Route("POST", "/api/schedule.json", app_api.run, "app_schedule",
          "Schedule a job (legacy name of run)", "app", JOBID_OK,
          body=_form("project", "spider"), error_shape=app_api.ERRORS, any_query=True),
    Route("POST", "/api/jobs/update.json", app_api.jobs_update, "app_jobs_update",
          "Add or remove tags of jobs", "app", COUNTED_OK, body=_form("project"),
          error_shape=app_api.ERRORS, any_query=True),
    Route("POST", "/api/jobs/stop.json", app_api.jobs_stop, "app_jobs_stop", "Cancel jobs",
          "app", _app_ok(), body=_form("project", "job"), error_shape=app_api.ERRORS,
          any_query=True),
    Route("POST", "/api/jobs/delete.json", app_api.jobs_delete, "app_jobs_delete",
          "Delete jobs", "app", COUNTED_OK, body=_form("project", "job"),
          error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/jobs/list.json", app_api.jobs_list, "app_jobs_list", "List jobs",
          "app", _app_ok(count={"type": "integer"}, total={"type": "integer"},
                         jobs=array({"type": "object"})),
          [APP_PROJECT], error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/jobs/list.jl", app_api.jobs_list_jl, "app_jobs_list_jl",
          "List jobs (the legacy client's JSON lines)", "app",
          {"200": ok("a status line, then one job a line",
                     {JSONLINES: {"schema": array({"type": "object"})}})},
          [APP_PROJECT], error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/jobs/count.json", app_api.jobs_count, "app_jobs_count", "Count jobs",
          "app", _app_ok(total={"type": "integer"}), [APP_PROJECT],
          error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/spiders/list.json", app_api.spiders_list, "app_spiders",
          "Spiders of a project", "app", _app_ok(spiders=array({"type": "object"})),
          [APP_PROJECT], error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/v2/projects/{pid}/spiders/{sid}", app_api.spider, "app_spider",
          "One spider and its tags", "app", _app_ok(tags=array(NAME)), [PID, SID],
          error_shape=app_api.ERRORS, any_query=True),
    Route("PATCH", "/api/v2/projects/{pid}/spiders/{sid}/tags", app_api.spider_tags,
          "app_spider_tags", "Add or remove tags of a spider", "app",
          _app_ok(tags=array(NAME)), [PID, SID], SPIDER_TAGS_BODY,
          error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/scrapyd/listprojects.json", app_api.listprojects, "app_listprojects",
          "Projects this key can see", "app", _app_ok(projects=array(ID)),
          error_shape=app_api.ERRORS, any_query=True),
    Route("GET", "/api/v2/users/me", app_api.users_me, "app_users_me",
          "Who this key is (shub login checks a key here)", "app",
          _app_ok(username={"type": "string"}), error_shape=app_api.ERRORS, any_query=True),
    # periodic jobs, in the app API's error shape
    Route("GET", "/schedules/{pid}", schedules.list_schedules, "list_schedules",
          "Schedules of a project", "schedules",
          _app_ok(count={"type": "integer"}, schedules=array(ref("Schedule"))), [PID],
          error_shape=app_api.ERRORS),
    Route("POST", "/schedules/{pid}", schedules.create, "create_schedule",
          "Create a schedule", "schedules", _app_ok("created", "201", schedule=ref("Schedule")),
          [PID], SCHEDULE_BODY, error_shape=app_api.ERRORS),
    Route("GET", "/schedules/{pid}/{id}", schedules.get, "get_schedule",
          "One schedule and its last ticks", "schedules", SCHEDULE_OK, SCHEDULE,
          error_shape=app_api.ERRORS),
    Route("PATCH", "/schedules/{pid}/{id}", schedules.update, "update_schedule",
          "Change a schedule", "schedules", SCHEDULE_OK, SCHEDULE, SCHEDULE_CHANGE,
          error_shape=app_api.ERRORS),
    Route("POST", "/schedules/{pid}/{id}", schedules.update, "update_schedule_post",
          "Change a schedule (POST)", "schedules", SCHEDULE_OK, SCHEDULE, SCHEDULE_CHANGE,
          error_shape=app_api.ERRORS),
    Route("DELETE", "/schedules/{pid}/{id}", schedules.delete, "delete_schedule",
          "Delete a schedule", "schedules", _app_ok(), SCHEDULE, error_shape=app_api.ERRORS),
    Route("POST", "/schedules/{pid}/{id}/pause", schedules.pause, "pause_schedule",
          "Pause a schedule", "schedules", SCHEDULE_OK, SCHEDULE, error_shape=app_api.ERRORS),
    Route("POST", "/schedules/{pid}/{id}/resume", schedules.resume, "resume_schedule",
          "Resume a schedule (the next tick counts from now)", "schedules", SCHEDULE_OK,
          SCHEDULE, error_shape=app_api.ERRORS),
    Route("POST", "/schedules/{pid}/{id}/run", schedules.run_now, "run_schedule",
          "Push the schedule's job now", "schedules", JOBID_OK, SCHEDULE,
          error_shape=app_api.ERRORS),
    # workers and leases (issue 10): admin keys, or the key that registered the worker
    Route("POST", "/workers", workers.register, "register_worker", "Register a worker",
          "workers", {"200": json_ok("its id and the heartbeat interval", ref("Registered"))},
          body=_value(ref("WorkerInfo"), "the worker", "body")),
    Route("GET", "/workers", workers.list_workers, "list_workers",
          "The registered workers and their jobs (admin)", "workers",
          {"200": json_ok("the workers", array(ref("WorkerRow")))}, access=Access.ADMIN),
    Route("POST", "/workers/{worker_id}/heartbeat", workers.heartbeat, "heartbeat",
          "Renew the leases of the jobs the worker runs", "workers",
          {"200": json_ok("what the server wants of each job", ref("HeartbeatAnswer"))},
          [WORKER_ID], HEARTBEAT_BODY),
    Route("POST", "/workers/{worker_id}/spiders", workers.register_spiders,
          "register_worker_spiders", "The spiders the worker can run (its project's)",
          "workers", {"200": json_ok("the names registered", {
              "type": "object", "required": ["id", "spiders"],
              "properties": {"id": {"type": "string"}, "spiders": array(NAME)}})},
          [WORKER_ID], Body(BodyKind.VALUE, value_body(
              {"type": "object", "required": ["spiders"],
               "properties": {"spiders": array(NAME)}, "additionalProperties": False},
              "the spider names (replacing those this worker registered before)"))),
    Route("DELETE", "/workers/{worker_id}", workers.unregister, "unregister_worker",
          "Forget a worker that runs no job", "workers", DONE, [WORKER_ID]),
    # operations: no credentials
    Route("GET", "/system/ts", misc.system_ts, "system_ts",
          "The server time (ms since the epoch)", "server",
          {"200": json_ok("the time", {"type": "integer"})}, access=Access.PUBLIC, errors=[]),
    Route("GET", "/healthz", misc.healthz, "healthz", "Liveness", "server",
          {"200": json_ok("the process answers", {
              "type": "object", "required": ["status"], "properties": HEALTH})},
          access=Access.PUBLIC, errors=[]),
    Route("GET", "/readyz", misc.readyz, "readyz", "Readiness: the database answers",
          "server",
          {"200": json_ok("ready", {
              "type": "object", "required": ["status", "database"],
              "properties": {**HEALTH, "database": {"type": "string"}}})},
          access=Access.PUBLIC, errors=["503"]),
    Route("GET", "/openapi.json", misc.openapi_document, "openapi", "This description",
          "server", {"200": json_ok("the OpenAPI 3.1 document", {"type": "object"})},
          access=Access.PUBLIC, errors=[]),
    Route("GET", "/metrics", ops.metrics_endpoint, "metrics", "Prometheus metrics", "server",
          {"200": ok("the Prometheus text exposition format",
                     {openapi.TEXT: {"schema": {"type": "string"}}})},
          access=Access.PUBLIC, errors=["401", "503"]),  # 401: the server has a --metrics-key
]
