"""Errors to HTTP answers, in one table. 401 and 403 answer JSON as the hosted service
does; the other errors a plain-text reason. Server-side failures (5xx) answer a short
message with the request id and never the database's own words (SQL, table or function
names): those go to the log, under the same request id."""

from __future__ import annotations

import orjson

from jobq import errors
from jobq.http.call import Reply

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


def internal_error(request_id: str) -> Reply:
    return Reply(f"internal server error (request {request_id})\n".encode(), 500, TEXT)


def reply_for(exc: errors.JobqError, status: int, request_id: str) -> Reply:
    """The answer to a request that failed with `exc` (of HTTP status `status`)."""
    if status in (401, 403):
        title = "Unauthorized" if status == 401 else "Forbidden"
        body = {"error": title, "message": exc.message}
        headers = {"WWW-Authenticate": 'Basic realm="jobq"'} if status == 401 else None
        return Reply(orjson.dumps(body), status, "application/json", headers)
    if status == 503:
        return Reply(f"{unavailable_message(exc)} (request {request_id})\n".encode(), 503,
                     TEXT, {"Retry-After": "1"})
    if isinstance(exc, errors.StorageFault):  # jobq's own words: what the operator must do
        return Reply(f"{exc.message} (request {request_id})\n".encode(), 500, TEXT)
    if status >= 500:
        return internal_error(request_id)
    headers = None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    return Reply((exc.message + "\n").encode(), status, TEXT, headers)
