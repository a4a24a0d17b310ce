"""`/api/...`: the job calls of Scrapy Cloud's app API (see spec APP-API.md), for
`ScrapinghubClient(dash_endpoint=...)` and `shub schedule`.

Form-encoded bodies (or query parameters); every answer a JSON object with `status`,
errors as `{"status": "error", "message": ...}` (`ERRORS`, the routes' error shape) with
the status code of the error table (a bad key answers the hosted service's
"Authentication failed").
"""

from __future__ import annotations

from typing import Any

import orjson

from jobq.core.app_api import AppApi, Form
from jobq.http import responses
from jobq.http.call import Call, Reply
from jobq.http.spec import ErrorShape


def _error(status: int, message: str) -> dict[str, Any]:
    return {"status": "error", "message": "Authentication failed" if status == 401 else message}


#: the error shape of the app API and of schedules
ERRORS = ErrorShape("AppError", {
    "description": "an app API or schedules error",
    "type": "object", "required": ["status", "message"],
    "properties": {"status": {"type": "string", "enum": ["error", "badrequest"]},
                   "message": {"type": "string"}},
}, _error)


def answer(value: dict[str, Any], status: int = 200) -> Reply:
    return Reply(orjson.dumps(value), status, "application/json")


def app(call: Call) -> AppApi:
    return call.services.app_api


def form(call: Call) -> Form:
    """Query parameters, then the urlencoded body's fields (routes with a FORM body)."""
    pairs = [(k, v) for k, v in call.query.items() if k != "apikey"]
    if call.body is not None:
        pairs += call.body
    return Form(pairs)


async def run(call: Call) -> Reply:
    key = await app(call).run(call.who, form(call))
    return answer({"status": "ok", "jobid": key})


async def jobs_update(call: Call) -> Reply:
    count = await app(call).update_tags(call.who, form(call))
    return answer({"status": "ok", "count": count})


async def jobs_stop(call: Call) -> Reply:
    await app(call).stop(call.who, form(call))
    return answer({"status": "ok"})


async def jobs_delete(call: Call) -> Reply:
    count = await app(call).delete(call.who, form(call))
    return answer({"status": "ok", "count": count})


async def jobs_list(call: Call) -> Reply:
    rows, total = await app(call).list_jobs(call.who, form(call))
    return answer({"status": "ok", "count": len(rows), "total": total, "jobs": rows})


async def jobs_list_jl(call: Call) -> Reply:
    """The legacy client's format: a status line, then one job a line."""
    rows, total = await app(call).list_jobs(call.who, form(call))
    lines = [orjson.dumps({"status": "ok", "count": len(rows), "total": total})]
    lines += [orjson.dumps(r) for r in rows]
    return Reply(b"\n".join(lines) + b"\n", 200, responses.JSONLINES)


async def jobs_count(call: Call) -> Reply:
    _, total = await app(call).list_jobs(call.who, Form([*form(call).pairs, ("count", "0")]))
    return answer({"status": "ok", "total": total})


async def spiders_list(call: Call) -> Reply:
    spiders = await app(call).spiders(call.who, form(call).project())
    return answer({"status": "ok", "spiders": spiders})


async def spider(call: Call) -> Reply:
    found = await app(call).spider(call.who, call.args["pid"], call.args["sid"])
    return answer({"status": "ok", **found})


async def spider_tags(call: Call) -> Reply:
    tags = await app(call).update_spider_tags(call.who, call.args["pid"], call.args["sid"],
                                              call.body)
    return answer({"status": "ok", "tags": tags})


async def listprojects(call: Call) -> Reply:
    return answer({"status": "ok", "projects": await app(call).projects(call.who)})


async def users_me(call: Call) -> Reply:
    """`shub login` checks a key here: 200 for a valid key."""
    return answer({"status": "ok", "username": call.who.name})
