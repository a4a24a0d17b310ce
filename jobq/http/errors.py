"""Errors to HTTP answers, in one table. 401 and 403 answer JSON as the hosted service
does; the other errors a plain-text reason. A route may render its errors in a JSON shape
of its own (`jobq.http.spec.ErrorShape`), with the same status, message and headers.
Server-side failures (5xx) answer a short message with the request id and never the
database's own words (SQL, table or function names): those go to the log, under the same
request id."""

from __future__ import annotations

import orjson

from jobq import errors
from jobq.http.call import Reply
from jobq.http.spec import ErrorShape

STATUS = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    # 503 means "the database is unavailable, retry" and nothing else; any other database
    # failure is the server's fault
    errors.StorageUnavailable: 503,
    errors.StorageError: 500,
    errors.StorageFault: 500,
}

#: words of an unavailable database's message that are safe and useful to pass on
_REASONS = (
    ("read-only", "read-only"),
    ("readonly", "read-only"),
    ("full", "disk full"),
    ("locked", "locked"),
    ("stopping", "the server is stopping"),
    ("the database is closed", "the server is stopping"),
)
TEXT = "text/plain; charset=utf-8"


def status_of(exc: errors.JobqError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def unavailable_message(exc: errors.JobqError) -> str:
    text = exc.message
    for word, reason in _REASONS:
        if word in text:
            return f"database unavailable ({reason}), retry later"
    return "database unavailable, retry later"


def internal_error(request_id: str, shape: ErrorShape | None = None) -> Reply:
    message = f"internal server error (request {request_id})"
    if shape is not None:
        return _shaped(shape, 500, message, None)
    return Reply(f"{message}\n".encode(), 500, TEXT)


def reply_for(exc: errors.JobqError, status: int, request_id: str,
              shape: ErrorShape | None = None) -> Reply:
    """The answer to a request that failed with `exc` (of HTTP status `status`), in the
    route's error shape when it has one."""
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Basic realm="jobq"'}
    elif status == 503:
        headers = {"Retry-After": "1"}
    elif isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    if status == 503:
        message = f"{unavailable_message(exc)} (request {request_id})"
    elif isinstance(exc, errors.StorageFault):  # jobq's own words: what the operator must do
        message = f"{exc.message} (request {request_id})"
    elif status >= 500:
        return internal_error(request_id, shape)
    else:
        message = exc.message
    if shape is not None:
        return _shaped(shape, status, message, headers)
    if status in (401, 403):
        title = "Unauthorized" if status == 401 else "Forbidden"
        body = {"error": title, "message": message}
        return Reply(orjson.dumps(body), status, "application/json", headers)
    return Reply((message + "\n").encode(), status, TEXT, headers)


def _shaped(shape: ErrorShape, status: int, message: str,
            headers: dict[str, str] | None) -> Reply:
    return Reply(orjson.dumps(shape.render(status, message)), status, "application/json",
                 headers)
