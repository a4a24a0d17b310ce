"""The resources around the queues: spider ids, project settings, project and spider
summaries, botgroups and the server clock."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobq import errors
from jobq.core import validation
from jobq.core.queue import now_ms
from jobq.domain import jobs
from jobq.http import params, responses
from jobq.http.endpoints._common import (
    caller,
    json_lines,
    json_value,
    project_id,
    queue,
    spider_id,
)


async def system_ts(request: Request) -> Response:
    return responses.json_response(now_ms())


async def ids_spider(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, {"create"})
    project = project_id(request)
    create = params.flag(request.query_params, "create")
    found = await queue(request).spider_id(who, project, request.path_params["name"], create)
    return responses.value_response(request, found)


async def get_settings(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    settings = await queue(request).settings(who, project_id(request))
    name = request.path_params.get("name")
    if name is None:
        return responses.value_response(request, settings)
    if name not in settings:
        raise errors.NotFound(f"no setting {name!r}")
    return responses.value_response(request, settings[name])


async def post_settings(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    name = request.path_params.get("name")
    if name is None:
        fields: dict[str, object] = {}
        for i, line in enumerate(await json_lines(request), 1):
            fields.update(validation.expect_object(line, f"line {i}"))
    else:
        fields = {name: await json_value(request, name)}
    await queue(request).update_settings(who, project, fields)
    return Response(status_code=200)


async def delete_setting(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    await queue(request).update_settings(
        who, project_id(request), {}, remove=[request.path_params["name"]]
    )
    return Response(status_code=200)


async def project_jobsummary(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    project = project_id(request)
    who.check_project(project)
    return responses.value_response(request, await queue(request).project_summary(project))


async def project_jobsummaries(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    return responses.value_response(request, await queue(request).project_summaries(who))


async def lastjobsummary(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, {"count", "start", "startafter"})
    project = project_id(request)
    spider = spider_id(request) if "sid" in request.path_params else None
    after = request.query_params.get("startafter")
    rows = await queue(request).last_jobs(
        who, project, spider,
        after_spider=jobs.parse_target(after, "startafter").spider if after else 0,
        start=params.integer(request.query_params, "start") or 0,
        count=params.integer(request.query_params, "count"),
    )
    return responses.rows_response(request, rows)


async def set_max_running(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    value = await json_value(request, "max_running")
    await queue(request).set_max_running(who, request.path_params["name"], value)
    return responses.json_response(None)


async def delete_botgroup(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    await queue(request).delete_botgroup(who, request.path_params["name"])
    return responses.json_response(None)


async def healthz(request: Request) -> Response:
    return responses.json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await queue(request).storage.ping()
    except errors.StorageFault as exc:  # not ready, and will not become so by itself
        return PlainTextResponse(exc.message + "\n", 503)
    return responses.json_response({"status": "ok", "database": "reachable"})
