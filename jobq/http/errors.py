"""Domain errors to HTTP answers, in one table. 401 and 403 answer JSON as the hosted
service does; the other errors a plain-text reason."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobq import errors

log = logging.getLogger(__name__)

STATUS = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.StorageError: 503,
}


def status_of(exc: errors.JobqError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def jobq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.JobqError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message,
                  extra={"action": "storage_error"})
    if status in (401, 403):
        title = "Unauthorized" if status == 401 else "Forbidden"
        body = {"error": title, "message": exc.message}
        headers = {"WWW-Authenticate": 'Basic realm="jobq"'} if status == 401 else None
        return Response(orjson.dumps(body), status, headers=headers,
                        media_type="application/json")
    headers = None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif status == 503:
        headers = {"Retry-After": "1"}
    return PlainTextResponse(exc.message + "\n", status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return PlainTextResponse((exc.detail or "") + "\n", exc.status_code, headers=exc.headers)


HANDLERS = {errors.JobqError: jobq_error, HTTPException: http_error}
