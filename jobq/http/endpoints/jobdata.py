"""`items/`, `logs/` and `requests/` `:pid/:sid/:jobno`: what a job produces.

    POST .../K?start=N        a batch (JSON lines, gzip or not); 200, empty body
    GET  .../K                the records (jl, json, msgpack, csv), streamed
    GET  .../K/stats          counts and totals
    GET  .../K/N              one record
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from jobq import errors
from jobq.core.jobdata import JobData
from jobq.domain import records_data, records_query
from jobq.domain.records_data import Kind
from jobq.domain.records_query import ReadQuery
from jobq.http import params, responses
from jobq.http.endpoints._common import body, caller, job_key
from jobq.http.record_formats import MEDIA_TYPES, Renderer, chosen_format

WRITE_PARAMS = frozenset({"start"})
READ_PARAMS = frozenset({"start", "startafter", "count", "index", "filter", "nodata",
                         "startts", "endts"})

#: most `index` parameters one read may give (each is a lookup)
MAX_INDEXES = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


def service(request: Request) -> JobData:
    found: JobData = request.app.state.jobdata
    return found


def read_query(request: Request) -> ReadQuery:
    query = request.query_params
    params.check_known(query, READ_PARAMS)
    key = job_key(request)
    start = 0
    if query.get("start"):
        start = records_data.parse_record_key(query["start"], key, "start")
    if query.get("startafter"):
        start = max(start, records_data.parse_record_key(query["startafter"], key,
                                                         "startafter") + 1)
    indexes = query.getlist("index")
    if len(indexes) > MAX_INDEXES:
        raise errors.BadRequest(f"index: at most {MAX_INDEXES} a request"
                                " (use start and count for a range)")
    return ReadQuery(
        start=start,
        count=params.integer(query, "count"),
        indexes=tuple(dict.fromkeys(records_data.parse_index(i, "index") for i in indexes))
        if indexes else None,
        filters=tuple(records_query.parse_filter(f) for f in query.getlist("filter")),
        meta=records_query.parse_meta(query.getlist("meta")),
        nodata=params.flag(query, "nodata"),
        startts=params.integer(query, "startts"),
        endts=params.integer(query, "endts"),
    )


def _endpoints(kind: Kind) -> tuple[Endpoint, Endpoint, Endpoint, Endpoint]:
    async def write(request: Request) -> Response:
        who = await caller(request)
        who.check_job(job_key(request))  # access first: a stranger learns nothing more
        params.check_known(request.query_params, WRITE_PARAMS)
        key = job_key(request)
        start = params.integer(request.query_params, "start")
        data = await body(request)
        await service(request).write(who, kind, key, start, data,
                                     request.headers.get("content-encoding"))
        return Response(status_code=200)

    async def read(request: Request) -> Response:
        who = await caller(request)
        who.check_job(job_key(request))  # access first: a stranger learns nothing more
        query = read_query(request)
        fmt = chosen_format(request)
        renderer = Renderer(request, fmt, job_key(request), query.meta, query.nodata)
        jobdata = service(request)
        stream = await jobdata.open_stream(who, kind, job_key(request))
        return StreamingResponse(renderer.stream(jobdata.blocks(stream, query)),
                                 media_type=MEDIA_TYPES[fmt],
                                 headers=responses._headers(request))

    async def stats(request: Request) -> Response:
        who = await caller(request)
        who.check_job(job_key(request))  # access first: a stranger learns nothing more
        params.check_known(request.query_params, ())
        jobdata = service(request)
        stream = await jobdata.open_stream(who, kind, job_key(request))
        return responses.json_response(await jobdata.stats(stream))

    async def one(request: Request) -> Response:
        who = await caller(request)
        who.check_job(job_key(request))  # access first: a stranger learns nothing more
        params.check_known(request.query_params, ("nodata",))
        index = records_data.parse_index(request.path_params["index"], "index")
        meta = records_query.parse_meta(request.query_params.getlist("meta"))
        nodata = params.flag(request.query_params, "nodata")
        fmt = chosen_format(request)
        renderer = Renderer(request, fmt, job_key(request), meta, nodata)
        jobdata = service(request)
        stream = await jobdata.open_stream(who, kind, job_key(request))
        block = await jobdata.record(stream, index, ReadQuery(meta=meta, nodata=nodata))
        return Response(renderer.one(block), media_type=MEDIA_TYPES[fmt])

    return write, read, stats, one


def routes() -> list[Route]:
    table = []
    for kind in Kind:
        write, read, stats, one = _endpoints(kind)
        path = f"/{kind.value}/{{pid}}/{{sid}}/{{jobno}}"
        table += [
            Route(path, write, methods=["POST"], name=f"{kind.value}_write"),
            Route(path, read, methods=["GET"], name=f"{kind.value}_read"),
            Route(path + "/stats", stats, methods=["GET"], name=f"{kind.value}_stats"),
            Route(path + "/{index}", one, methods=["GET"], name=f"{kind.value}_one"),
        ]
    return table

