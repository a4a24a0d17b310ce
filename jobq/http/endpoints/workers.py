"""`workers`: registration, heartbeats and the list of workers (issue 10). Rules in
`jobq.core.workers`; leased claims and long polls go through `jobq/:pid/startjob`."""

from __future__ import annotations

from jobq import errors
from jobq.core.workers import Workers
from jobq.http import bodies, responses
from jobq.http.call import Call, Reply

#: longest worker id a path may carry (ids are 16 hex digits)
MAX_WORKER_ID = 64


def parse_worker_id(text: str) -> str:
    if len(text) > MAX_WORKER_ID:
        raise errors.BadRequest("worker id: expected the id POST workers answered")
    return text


def _workers(call: Call) -> Workers:
    return call.services.workers


async def register(call: Call) -> Reply:
    return responses.json_response(await _workers(call).register(call.who, call.body))


async def list_workers(call: Call) -> Reply:
    return responses.json_response(await _workers(call).list_workers(call.who))


async def heartbeat(call: Call) -> Reply:
    # an empty body is a heartbeat of a worker that runs no job
    raw = call.raw
    payload = (bodies.json_value(raw, call.services.settings.max_line)
               if raw.strip() else None)
    answer = await _workers(call).heartbeat(call.who, call.args["worker_id"], payload)
    return responses.json_response(answer)


async def register_spiders(call: Call) -> Reply:
    answer = await _workers(call).register_spiders(call.who, call.args["worker_id"], call.body)
    return responses.json_response(answer)


async def unregister(call: Call) -> Reply:
    await _workers(call).unregister(call.who, call.args["worker_id"])
    return responses.json_response(None)

