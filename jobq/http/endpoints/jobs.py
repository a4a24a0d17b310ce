"""`jobs/:pid/:sid/:jobno[/FIELD]`: the metadata of one job."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from jobq import errors
from jobq.http import params, responses
from jobq.http.endpoints._common import caller, job_key, json_lines, json_value, queue


async def get_meta(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    meta = await queue(request).job_meta(who, job_key(request))
    field = request.path_params.get("field")
    if field is None:
        return responses.rows_response(request, [meta])
    if field not in meta:
        raise errors.NotFound(f"job {job_key(request)} has no field {field!r}")
    return responses.value_response(request, meta[field])


async def post_meta(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    key = job_key(request)
    field = request.path_params.get("field")
    if field is None:
        lines = await json_lines(request)
    else:
        lines = [{field: await json_value(request, field)}]
    await queue(request).set_job_meta(who, key, lines)
    return Response(status_code=200)


async def delete(request: Request) -> Response:
    who = await caller(request)
    params.check_known(request.query_params, ())
    key = job_key(request)
    field = request.path_params.get("field")
    if field is None:
        await queue(request).remove_job(who, key)
    else:
        await queue(request).delete_job_meta_field(who, key, field)
    return Response(status_code=200)
