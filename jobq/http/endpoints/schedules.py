"""`/schedules/:pid[/:id[/action]]`: periodic jobs (issue 13). JSON bodies and answers
(`{"status": "ok", ...}`, errors as the app API renders them); the same keys and project
isolation as JobQ."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from jobq.core.schedules import Schedules
from jobq.domain.jobs import parse_id
from jobq.http.endpoints._common import caller, project_id
from jobq.http.endpoints.app_api import answer, app_errors, json_body


def service(request: Request) -> Schedules:
    found: Schedules = request.app.state.schedules
    return found


def schedule_id(request: Request) -> int:
    return parse_id(request.path_params["id"], "schedule id")


@app_errors
async def list_schedules(request: Request) -> Response:
    who = await caller(request)
    found = await service(request).list(who, project_id(request))
    return answer({"status": "ok", "count": len(found), "schedules": found})


@app_errors
async def create(request: Request) -> Response:
    who = await caller(request)
    project = project_id(request)
    made = await service(request).create(who, project, await json_body(request))
    return answer({"status": "ok", "schedule": made}, 201)


@app_errors
async def get(request: Request) -> Response:
    who = await caller(request)
    found = await service(request).get(who, project_id(request), schedule_id(request))
    return answer({"status": "ok", "schedule": found})


@app_errors
async def update(request: Request) -> Response:
    who = await caller(request)
    fields = await json_body(request)
    changed = await service(request).update(who, project_id(request), schedule_id(request),
                                            {} if fields is None else fields)
    return answer({"status": "ok", "schedule": changed})


@app_errors
async def pause(request: Request) -> Response:
    who = await caller(request)
    changed = await service(request).pause(who, project_id(request), schedule_id(request))
    return answer({"status": "ok", "schedule": changed})


@app_errors
async def resume(request: Request) -> Response:
    who = await caller(request)
    changed = await service(request).resume(who, project_id(request), schedule_id(request))
    return answer({"status": "ok", "schedule": changed})


@app_errors
async def delete(request: Request) -> Response:
    who = await caller(request)
    await service(request).delete(who, project_id(request), schedule_id(request))
    return answer({"status": "ok"})


@app_errors
async def run_now(request: Request) -> Response:
    who = await caller(request)
    key = await service(request).run_now(who, project_id(request), schedule_id(request))
    return answer({"status": "ok", "jobid": key})
