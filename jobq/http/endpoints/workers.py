"""`workers`: registration, heartbeats and the list of workers; `startjob` with a worker
id (a lease) and `wait` (long poll). Rules in `jobq.core.workers`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from jobq import errors
from jobq.core.workers import MAX_WAIT, Workers
from jobq.http import bodies, params, responses
from jobq.http.endpoints._common import (
    body,
    caller,
    json_lines,
    json_value,
    project_id,
    settings,
)


def service(request: Request) -> Workers:
    found: Workers = request.app.state.workers
    return found


def _worker_id(request: Request) -> str:
    worker_id = str(request.path_params["worker_id"])
    if not worker_id or len(worker_id) > 64:
        raise errors.BadRequest("worker id: expected the id POST workers answered")
    return worker_id


async def register(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    return responses.json_response(
        await service(request).register(who, await json_value(request)))


async def list_workers(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    return responses.json_response(await service(request).list_workers(who))


async def heartbeat(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    worker_id = _worker_id(request)
    raw = await body(request)
    payload = bodies.json_value(raw, settings(request).max_line) if raw.strip() else None
    return responses.json_response(await service(request).heartbeat(who, worker_id, payload))


async def unregister(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    await service(request).unregister(who, _worker_id(request))
    return responses.json_response(None)


async def startjob(request: Request) -> Response:
    """`jobq/:pid/startjob`, also with `worker_id` in the start parameters (the job gets a
    lease) and `?wait=S` (wait up to S seconds for a job before answering 204)."""
    who = await caller(request)
    params.check_known(request.query_params, {"wait"})
    project = project_id(request)
    wait = params.integer(request.query_params, "wait", minimum=0) or 0
    if wait > MAX_WAIT:
        raise errors.BadRequest(f"wait: at most {MAX_WAIT:g} seconds")
    lines = await json_lines(request)
    if len(lines) > 1:
        raise errors.BadRequest("body: expected at most one JSON object of start parameters")
    job = await service(request).start(who, project, lines[0] if lines else {}, float(wait))
    if job is None:
        return Response(status_code=204)
    return responses.json_response(job)
