"""`jobq/:pid/...`: the queues of a project."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from jobq import errors
from jobq.domain.jobs import LISTABLE, JobKey, State
from jobq.http import bodies, params, responses
from jobq.http.endpoints._common import (
    body,
    caller,
    job_key,
    json_lines,
    project_id,
    queue,
    settings,
    spider_id,
)


async def list_jobs(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, params.LIST_PARAMS)
    project = project_id(request)
    req = params.list_request(request.query_params, (State.FINISHED,))
    return responses.rows_response(request, await queue(request).list_jobs(who, project, req))


async def count(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, params.LIST_PARAMS)
    project = project_id(request)
    req = params.list_request(request.query_params, (State.FINISHED,))
    return responses.value_response(request, await queue(request).count(who, project, req))


async def summary(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, {"count", "start", "jobmeta"})
    project = project_id(request)
    spider = spider_id(request) if "sid" in request.path_params else None
    state = None
    if "state" in request.path_params:
        state = State.parse(request.path_params["state"], "queue")
        if state not in LISTABLE:
            raise errors.NotFound(f"no queue {state.label!r}: deleted jobs are not summarised")
    req = params.list_request(request.query_params, LISTABLE)
    rows = await queue(request).summary(who, project, spider, state, req)
    return responses.rows_response(request, rows)


async def jobsummary(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, {"key", "jobmeta"})
    project = project_id(request)
    keys = [JobKey.parse(k, "key") for k in request.query_params.getlist("key")]
    rows = await queue(request).jobsummary(
        who, project, keys, request.query_params.getlist("jobmeta")
    )
    return responses.rows_response(request, rows)


async def push(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    lines = await json_lines(request)
    return responses.rows_response(request, await queue(request).push(who, project, lines))


async def startjob(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    lines = await json_lines(request)
    if len(lines) > 1:
        raise errors.BadRequest("body: expected at most one JSON object of start parameters")
    job = await queue(request).start(who, project, lines[0] if lines else {})
    if job is None:
        return Response(status_code=204)
    return responses.json_response(job)


async def update(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    lines = await json_lines(request)
    return responses.rows_response(request, await queue(request).update(who, project, lines))


async def cancel(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, {"count"})
    project = project_id(request)
    limit = params.integer(request.query_params, "count", minimum=1)
    raw = await body(request)
    if limit is not None:
        if raw.strip():
            raise errors.BadRequest("count: give either keys in the body or count, not both")
        cancelled = await queue(request).cancel(who, project, None, limit)
    else:
        items = bodies.objects(raw, settings(request).max_line)
        cancelled = await queue(request).cancel(who, project, items, None)
    return responses.json_response({"count": cancelled})


async def cancel_job(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    key = str(job_key(request))  # checks the job number as well
    cancelled = await queue(request).cancel(who, project, [{"key": key}], None)
    return responses.json_response({"count": cancelled})
