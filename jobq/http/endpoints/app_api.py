"""`/api/...`: the job calls of Scrapy Cloud's app API (see spec APP-API.md), for
`ScrapinghubClient(dash_endpoint=...)` and `shub schedule`.

Form-encoded bodies (or query parameters); every answer a JSON object with `status`,
errors as `{"status": "error", "message": ...}` with the status code of the error table
(a bad key answers the hosted service's "Authentication failed").
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from jobq import errors
from jobq.core.app_api import AppApi, Form
from jobq.http import bodies, responses
from jobq.http import errors as http_errors
from jobq.http.endpoints._common import body, caller, project_id, settings, spider_id

Endpoint = Callable[[Request], Awaitable[Response]]


def answer(value: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")


def app_errors(endpoint: Endpoint) -> Endpoint:
    """Render jobq errors in the app API's shape."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except errors.JobqError as exc:
            status = http_errors.status_of(exc)
            message = "Authentication failed" if status == 401 else exc.message
            headers = {"Retry-After": "1"} if status == 503 else None
            response = answer({"status": "error", "message": message}, status)
            if headers:
                response.headers.update(headers)
            return response

    return wrapped


def app(request: Request) -> AppApi:
    service: AppApi = request.app.state.app_api
    return service


async def form(request: Request) -> Form:
    """Query parameters, then the urlencoded body's fields."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "apikey"]
    if request.method in ("POST", "PUT", "PATCH"):
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            raise errors.BadRequest("send the form as application/x-www-form-urlencoded")
        raw = await body(request)
        try:
            pairs += parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.BadRequest(f"body: not a urlencoded form: {exc}") from None
    return Form(pairs)


async def json_body(request: Request) -> Any:
    """The JSON body, or None when the body is empty."""
    raw = await body(request)
    if not raw.strip():
        return None
    return bodies.json_value(raw, settings(request).max_line, "body")


def _fmt(request: Request) -> str:
    fmt: str = request.path_params.get("fmt", "json")
    if fmt not in ("json", "jl"):
        raise errors.NotFound(f"no format {fmt!r} (json or jl)")
    return fmt


@app_errors
async def run(request: Request) -> Response:
    who = await caller(request)
    key = await app(request).run(who, await form(request))
    return answer({"status": "ok", "jobid": key})


@app_errors
async def jobs_update(request: Request) -> Response:
    who = await caller(request)
    count = await app(request).update_tags(who, await form(request))
    return answer({"status": "ok", "count": count})


@app_errors
async def jobs_stop(request: Request) -> Response:
    who = await caller(request)
    await app(request).stop(who, await form(request))
    return answer({"status": "ok"})


@app_errors
async def jobs_delete(request: Request) -> Response:
    who = await caller(request)
    count = await app(request).delete(who, await form(request))
    return answer({"status": "ok", "count": count})


@app_errors
async def jobs_list(request: Request) -> Response:
    who = await caller(request)
    fmt = _fmt(request)
    rows, total = await app(request).list_jobs(who, await form(request))
    if fmt == "jl":  # the legacy client: a status line, then one job a line
        lines = [orjson.dumps({"status": "ok", "count": len(rows), "total": total})]
        lines += [orjson.dumps(r) for r in rows]
        return Response(b"\n".join(lines) + b"\n", media_type=responses.JSONLINES)
    return answer({"status": "ok", "count": len(rows), "total": total, "jobs": rows})


@app_errors
async def jobs_count(request: Request) -> Response:
    who = await caller(request)
    _, total = await app(request).list_jobs(who, Form([*(await form(request)).pairs,
                                                         ("count", "0")]))
    return answer({"status": "ok", "total": total})


@app_errors
async def spiders_list(request: Request) -> Response:
    who = await caller(request)
    project = (await form(request)).project()
    return answer({"status": "ok", "spiders": await app(request).spiders(who, project)})


@app_errors
async def spider(request: Request) -> Response:
    who = await caller(request)
    found = await app(request).spider(who, project_id(request), spider_id(request))
    return answer({"status": "ok", **found})


@app_errors
async def spider_tags(request: Request) -> Response:
    who = await caller(request)
    project = project_id(request)
    sid = spider_id(request)
    value = await json_body(request)
    tags = await app(request).update_spider_tags(who, project, sid, value)
    return answer({"status": "ok", "tags": tags})


@app_errors
async def listprojects(request: Request) -> Response:
    who = await caller(request)
    return answer({"status": "ok", "projects": await app(request).projects(who)})


@app_errors
async def not_here(request: Request) -> Response:
    """Deploys (eggs, addversion) and other app API calls jobq does not serve."""
    raise errors.NotFound(f"{request.url.path}: jobq does not deploy code or serve this call")



@app_errors
async def users_me(request: Request) -> Response:
    """`shub login` checks a key here: 200 for a valid key."""
    who = await caller(request)
    return answer({"status": "ok", "username": who.name})
