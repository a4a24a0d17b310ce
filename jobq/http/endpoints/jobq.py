"""`jobq/:pid/...`: the queues of a project."""

from __future__ import annotations

from jobq import errors
from jobq.domain.jobs import LISTABLE, JobKey, State
from jobq.http import bodies, params, responses
from jobq.http.call import Call, Reply


async def list_jobs(call: Call) -> Reply:
    req = params.list_request(call.query, call.args, (State.FINISHED,))
    rows = await call.queue.list_page(call.who, call.args["pid"], req)
    return responses.rows_response(call, rows)


async def count(call: Call) -> Reply:
    req = params.list_request(call.query, call.args, (State.FINISHED,))
    return responses.value_response(call, await call.queue.count(call.who, call.args["pid"], req))


async def summary(call: Call) -> Reply:
    state = call.args.get("state")
    if state is not None and state not in LISTABLE:
        raise errors.NotFound(f"no queue {state.label!r}: deleted jobs are not summarised")
    req = params.list_request(call.query, call.args, LISTABLE)
    rows = await call.queue.summary(call.who, call.args["pid"], call.args.get("sid"), state, req)
    return responses.rows_response(call, rows)


async def jobsummary(call: Call) -> Reply:
    keys = [JobKey.parse(k, "key") for k in call.query.getlist("key")]
    rows = await call.queue.jobsummary(call.who, call.args["pid"], keys,
                                       call.query.getlist("jobmeta"))
    return responses.rows_response(call, rows)


async def push(call: Call) -> Reply:
    return responses.rows_response(call, await call.queue.push(call.who, call.args["pid"],
                                                               call.body))


async def startjob(call: Call) -> Reply:
    """Also with `worker_id` in the start parameters (the job gets a lease) and `?wait=S`
    (wait up to S seconds for a job before answering 204): see `jobq.core.workers`."""
    lines = call.body
    if len(lines) > 1:
        raise errors.BadRequest("body: expected at most one JSON object of start parameters")
    wait = call.args.get("wait") or 0
    job = await call.services.workers.start(call.who, call.args["pid"],
                                            lines[0] if lines else {}, float(wait))
    if job is None:
        return Reply(status=204)
    return responses.json_response(job)


async def update(call: Call) -> Reply:
    return responses.rows_response(call, await call.queue.update(call.who, call.args["pid"],
                                                                 call.body))


async def cancel(call: Call) -> Reply:
    project = call.args["pid"]
    limit = call.args.get("count")
    if limit is not None:
        if call.raw.strip():
            raise errors.BadRequest("count: give either keys in the body or count, not both")
        cancelled = await call.queue.cancel(call.who, project, None, limit)
    else:
        items = bodies.objects(call.raw, call.services.settings.max_line)
        cancelled = await call.queue.cancel(call.who, project, items, None)
    return responses.json_response({"count": cancelled})


async def cancel_job(call: Call) -> Reply:
    key = JobKey(call.args["pid"], call.args["sid"], call.args["jobno"])
    cancelled = await call.queue.cancel(call.who, key.project, [{"key": str(key)}], None)
    return responses.json_response({"count": cancelled})
