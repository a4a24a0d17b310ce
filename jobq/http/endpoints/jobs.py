"""`jobs/:pid/:sid/:jobno[/FIELD]`: the metadata of one job."""

from __future__ import annotations

from jobq import errors
from jobq.domain.jobs import JobKey
from jobq.http import responses
from jobq.http.call import Call, Reply


def _key(call: Call) -> JobKey:
    return JobKey(call.args["pid"], call.args["sid"], call.args["jobno"])


async def get_meta(call: Call) -> Reply:
    key = _key(call)
    meta = await call.queue.job_meta(call.who, key)
    field = call.args.get("field")
    if field is None:
        return responses.rows_response(call, [meta])
    if field not in meta:
        raise errors.NotFound(f"job {key} has no field {field!r}")
    return responses.value_response(call, meta[field])


async def post_meta(call: Call) -> Reply:
    field = call.args.get("field")
    lines = call.body if field is None else [{field: call.body}]
    await call.queue.set_job_meta(call.who, _key(call), lines)
    return Reply()


async def delete(call: Call) -> Reply:
    field = call.args.get("field")
    if field is None:
        await call.queue.remove_job(call.who, _key(call))
    else:
        await call.queue.delete_job_meta_field(call.who, _key(call), field)
    return Reply()
