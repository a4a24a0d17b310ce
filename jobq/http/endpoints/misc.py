"""The resources around the queues: spider ids, project settings, project and spider
summaries, botgroups and the server clock."""

from __future__ import annotations

from jobq import errors
from jobq.core import validation
from jobq.core.queue import now_ms
from jobq.domain import jobs
from jobq.http import params, responses
from jobq.http.call import Call, Reply, json_reply
from jobq.http.errors import TEXT


async def system_ts(call: Call) -> Reply:
    return responses.json_response(now_ms())


async def ids_spider(call: Call) -> Reply:
    create = params.flag(call.query, "create")
    found = await call.queue.spider_id(call.who, call.args["pid"], call.args["name"], create)
    return responses.value_response(call, found)


async def get_settings(call: Call) -> Reply:
    settings = await call.queue.settings(call.who, call.args["pid"])
    name = call.args.get("name")
    if name is None:
        return responses.value_response(call, settings)
    if name not in settings:
        raise errors.NotFound(f"no setting {name!r}")
    return responses.value_response(call, settings[name])


async def post_settings(call: Call) -> Reply:
    name = call.args.get("name")
    if name is None:
        fields: dict[str, object] = {}
        for i, line in enumerate(call.body, 1):
            fields.update(validation.expect_object(line, f"line {i}"))
    else:
        fields = {name: call.body}
    await call.queue.update_settings(call.who, call.args["pid"], fields)
    return Reply()


async def delete_setting(call: Call) -> Reply:
    await call.queue.update_settings(call.who, call.args["pid"], {},
                                      remove=[call.args["name"]])
    return Reply()


async def project_jobsummary(call: Call) -> Reply:
    project = call.args["pid"]
    call.who.check_project(project)
    return responses.value_response(call, await call.queue.project_jobsummary(project))


async def project_jobsummaries(call: Call) -> Reply:
    return responses.value_response(call, await call.queue.project_summaries(call.who))


async def lastjobsummary(call: Call) -> Reply:
    after = call.query.get("startafter")
    rows = await call.queue.last_jobs(
        call.who, call.args["pid"], call.args.get("sid"),
        after_spider=jobs.parse_target(after, "startafter").spider if after else 0,
        start=call.args.get("start") or 0,
        count=call.args.get("count"),
    )
    return responses.rows_response(call, rows)


async def set_max_running(call: Call) -> Reply:
    await call.queue.set_max_running(call.who, call.args["name"], call.body)
    return responses.json_response(None)


async def delete_botgroup(call: Call) -> Reply:
    await call.queue.delete_botgroup(call.who, call.args["name"])
    return responses.json_response(None)


async def healthz(call: Call) -> Reply:
    return responses.json_response({"status": "ok"})


async def readyz(call: Call) -> Reply:
    try:
        await call.queue.storage.ping()
    except errors.StorageFault as exc:  # not ready, and will not become so by itself
        return Reply((exc.message + "\n").encode(), 503, TEXT)
    return responses.json_response({"status": "ok", "database": "reachable"})


async def openapi_document(call: Call) -> Reply:
    return json_reply(call.services.openapi)
