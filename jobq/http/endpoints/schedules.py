"""`/schedules/:pid[/:id[/action]]`: periodic jobs (issue 13). JSON bodies and answers
(`{"status": "ok", ...}`, errors in the app API's shape); the same keys and project
isolation as JobQ."""

from __future__ import annotations

from jobq.core.schedules import Schedules
from jobq.http.call import Call, Reply
from jobq.http.endpoints.app_api import answer


def service(call: Call) -> Schedules:
    return call.services.schedules


async def list_schedules(call: Call) -> Reply:
    found = await service(call).list(call.who, call.args["pid"])
    return answer({"status": "ok", "count": len(found), "schedules": found})


async def create(call: Call) -> Reply:
    made = await service(call).create(call.who, call.args["pid"], call.body)
    return answer({"status": "ok", "schedule": made}, 201)


async def get(call: Call) -> Reply:
    found = await service(call).get(call.who, call.args["pid"], call.args["id"])
    return answer({"status": "ok", "schedule": found})


async def update(call: Call) -> Reply:
    fields = {} if call.body is None else call.body
    changed = await service(call).update(call.who, call.args["pid"], call.args["id"], fields)
    return answer({"status": "ok", "schedule": changed})


async def pause(call: Call) -> Reply:
    changed = await service(call).pause(call.who, call.args["pid"], call.args["id"])
    return answer({"status": "ok", "schedule": changed})


async def resume(call: Call) -> Reply:
    changed = await service(call).resume(call.who, call.args["pid"], call.args["id"])
    return answer({"status": "ok", "schedule": changed})


async def delete(call: Call) -> Reply:
    await service(call).delete(call.who, call.args["pid"], call.args["id"])
    return answer({"status": "ok"})


async def run_now(call: Call) -> Reply:
    key = await service(call).run_now(call.who, call.args["pid"], call.args["id"])
    return answer({"status": "ok", "jobid": key})
