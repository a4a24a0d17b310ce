"""`items/`, `logs/` and `requests/` `:pid/:sid/:jobno`: what a job produces.

    POST .../K?start=N        a batch (JSON lines, gzip or not); 200, empty body
    GET  .../K                the records (jl, json, msgpack, csv), streamed
    GET  .../K/stats          counts and totals
    GET  .../K/N              one record

Each handler takes the kind of record first (the table binds it: one handler serves the
three kinds). The routes are `Access.JOB`: the caller's access to the job is checked
before the query or the body is read.
"""

from __future__ import annotations

from jobq import errors
from jobq.domain import records_data, records_query
from jobq.domain.jobs import JobKey
from jobq.domain.records_data import Kind
from jobq.domain.records_query import ReadQuery
from jobq.http import params, responses
from jobq.http.call import Call, Reply
from jobq.http.record_formats import MEDIA_TYPES, Renderer, chosen_format

#: most `index` parameters one read may give (each is a lookup)
MAX_INDEXES = 1000


def _key(call: Call) -> JobKey:
    return JobKey(call.args["pid"], call.args["sid"], call.args["jobno"])


def read_query(call: Call, key: JobKey) -> ReadQuery:
    """The read's parameters; the integer ones (`count`, `startts`, `endts`) arrive parsed."""
    query = call.query
    start = 0
    if query.get("start"):
        start = records_data.parse_record_key(query.get("start", ""), key, "start")
    if query.get("startafter"):
        start = max(start, records_data.parse_record_key(query.get("startafter", ""), key,
                                                         "startafter") + 1)
    indexes = query.getlist("index")
    if len(indexes) > MAX_INDEXES:
        raise errors.BadRequest(f"index: at most {MAX_INDEXES} a request"
                                " (use start and count for a range)")
    return ReadQuery(
        start=start,
        count=call.args.get("count"),
        indexes=tuple(dict.fromkeys(records_data.parse_index(i, "index") for i in indexes))
        if indexes else None,
        filters=tuple(records_query.parse_filter(f) for f in query.getlist("filter")),
        meta=records_query.parse_meta(query.getlist("meta")),
        nodata=params.flag(query, "nodata"),
        startts=call.args.get("startts"),
        endts=call.args.get("endts"),
    )


async def write(kind: Kind, call: Call) -> Reply:
    await call.services.jobdata.write(call.who, kind, _key(call), call.args.get("start"),
                                      call.raw, call.header(b"content-encoding") or None)
    return Reply()


async def read(kind: Kind, call: Call) -> Reply:
    """Streamed: a whole job's records never sit in memory. Everything that can fail on
    the request (parameters, format, access, an unknown job) fails before the stream."""
    key = _key(call)
    query = read_query(call, key)
    fmt = chosen_format(call)
    renderer = Renderer(call, fmt, key, query.meta, query.nodata)
    jobdata = call.services.jobdata
    stream = await jobdata.open_stream(call.who, kind, key)
    return Reply(media_type=MEDIA_TYPES[fmt], headers=responses.download_headers(call),
                 stream=renderer.stream(jobdata.blocks(stream, query)))


async def stats(kind: Kind, call: Call) -> Reply:
    jobdata = call.services.jobdata
    stream = await jobdata.open_stream(call.who, kind, _key(call))
    return responses.json_response(await jobdata.stats(stream))


async def one(kind: Kind, call: Call) -> Reply:
    key = _key(call)
    meta = records_query.parse_meta(call.query.getlist("meta"))
    nodata = params.flag(call.query, "nodata")
    fmt = chosen_format(call)
    renderer = Renderer(call, fmt, key, meta, nodata)
    jobdata = call.services.jobdata
    stream = await jobdata.open_stream(call.who, kind, key)
    block = await jobdata.record(stream, call.args["index"], ReadQuery(meta=meta, nodata=nodata))
    return Reply(renderer.one(block), media_type=MEDIA_TYPES[fmt])
