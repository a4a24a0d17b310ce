"""The one ASGI callable of the server: for each request it sets the request id, finds the
route, checks the credentials and the rate limit, parses parameters and body as the route
declares, calls the handler, renders errors and records metrics and the access log. One
layer, so that a request costs few Python calls and every answer (a 500 too) carries its
X-Request-ID."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jobq import errors, logs
from jobq.http import bodies
from jobq.http import errors as http_errors
from jobq.http.auth import Principals, credentials
from jobq.http.call import EMPTY_QUERY, Call, Query, Reply, Services
from jobq.http.dispatch import NotRouted, Router
from jobq.http.ratelimit import TokenBuckets
from jobq.http.spec import Access, BodyKind, ErrorShape
from jobq.metrics import RATE_LIMITED

log = logging.getLogger("jobq.access")
error_log = logging.getLogger("jobq.http")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# request ids: a random prefix for this process, then a counter (uuid4 a request costs more)
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)
#: status recorded for a client that went away before its request was read (as nginx does)
CLIENT_GONE = 499


class ClientGone(Exception):
    """The client disconnected before its request body was in."""


class _Stall:
    """The timer callback of a request body that stalls: it cancels the request's task,
    and tells that cancellation from any other (as `asyncio.timeout` does)."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        assert task is not None, "a request body read outside a task"
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()

    def expired(self) -> bool:
        """Whether the CancelledError being handled is this timer's alone (then the task
        is no longer being cancelled); any other cancellation goes on."""
        return self.fired and self.task.uncancel() == 0


class RequestHandler:
    """Serves HTTP requests; `jobq.http.app.JobqApp` adds the lifespan around it."""

    def __init__(self, router: Router, services: Services, principals: Principals,
                 buckets: TokenBuckets | None) -> None:
        self.router = router
        self.services = services
        self.principals = principals
        self.buckets = buckets
        self.max_body = services.settings.max_body
        self.max_line = services.settings.max_line
        self.body_timeout = services.settings.body_timeout

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        rid = ""
        for key, value in headers:
            if key == b"x-request-id":
                given = value.decode("latin-1")
                if _SAFE_ID.fullmatch(given):
                    rid = given
                break
        if not rid:
            rid = f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        token = logs.request_id.set(rid)
        start = time.perf_counter()
        method: str = scope["method"]
        route_metrics = None
        shape = None
        status = 500
        try:
            try:
                compiled, segments = self.router.match(method, scope["path"])
                route_metrics = compiled.metrics
                shape = compiled.error_shape
                raw_query = scope["query_string"]
                query = Query.parse(raw_query) if raw_query else EMPTY_QUERY
                who = None
                if compiled.access is not Access.PUBLIC:
                    who = await self._caller(scope, headers, query)
                    if compiled.access is Access.ADMIN:
                        who.check_admin()
                if compiled.access is Access.JOB:
                    assert who is not None
                    who.check_job(compiled.job(segments))
                args = compiled.parse_path(segments)
                if raw_query or compiled.required:
                    compiled.parse_query(query, args)
                call = Call(self.services, headers, query, args, who)
                body = compiled.body
                if body.kind is not BodyKind.NONE:
                    call.raw = raw = await read_body(headers, receive, self.max_body,
                                                     self.body_timeout)
                    if body.kind is BodyKind.LINES:
                        call.body = bodies.json_lines(raw, self.max_line)
                    elif body.kind is BodyKind.VALUE:
                        if compiled.empty_value and not raw.strip():
                            call.body = None
                        else:
                            name = args[body.name] if body.name_from_path else body.name
                            call.body = bodies.json_value(raw, self.max_line, name)
                    elif body.kind is BodyKind.FORM:
                        call.body = bodies.form(raw, call.header(b"content-type"))
                reply = await compiled.handler(call)
                if reply.stream is not None and method != "HEAD":
                    # the first part before the status goes out: a failure there (the
                    # database gone at the first read) still answers its own error
                    reply.body = await anext(reply.stream, b"")
            except ClientGone:
                status = CLIENT_GONE
                return
            except NotRouted as exc:
                reply = Reply((exc.message + "\n").encode(), exc.status, http_errors.TEXT,
                              {"Allow": ", ".join(exc.allow)} if exc.allow else None)
            except errors.JobqError as exc:
                reply = self._failed(exc, scope, rid, shape)
            except Exception:
                error_log.exception("%s %s failed", method, scope["path"],
                                    extra={"action": "internal_error"})
                reply = http_errors.internal_error(rid, shape)
            status = reply.status
            try:
                await _send(send, reply, rid, method == "HEAD")
            except Exception:
                if reply.stream is None:
                    raise
                # the status is out: re-raised so that the server cuts the connection and
                # the client sees an unfinished body, never a short one that looks whole
                error_log.warning("%s %s: answer cut short", method, scope["path"],
                                  exc_info=True, extra={"action": "stream_failed"})
                raise
        finally:
            elapsed = time.perf_counter() - start
            if route_metrics is None:
                route_metrics = self.router.unmatched(method)
            route_metrics.record(status, elapsed)
            level = logging.WARNING if status >= 500 else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(level, "%s %s %d", method, scope["path"], status,
                        extra={"action": "request", "status": status,
                               "duration_ms": round(elapsed * 1000, 3)})
            logs.request_id.reset(token)

    async def _caller(self, scope: Message, headers: list[tuple[bytes, bytes]],
                      query: Query) -> Any:
        """The principal of the request's credentials, rate-limited: by principal, and for
        credentials not (yet) known to be good by client address, before any lookup."""
        authorization = b""
        for key, value in headers:
            if key == b"authorization":
                authorization = value
                break
        # known credentials are found by their raw text: no decoding, hashing or lookup
        cache_key: bytes | str | None = authorization
        if authorization[:6].lower() != b"basic ":
            cache_key = query.get("apikey")
        who = self.principals.cached(cache_key) if cache_key else None
        buckets = self.buckets
        if who is None:
            client = scope.get("client")
            address = ("address", client[0] if client else "")
            if buckets is not None and (wait := buckets.peek(address)):
                self._limited(wait)
            try:
                given = credentials(authorization.decode("latin-1"), query)
                who = await self.principals.look_up(cache_key, given)
            except errors.Unauthorized:
                if buckets is not None:
                    buckets.wait_time(address)
                raise
        if buckets is not None and (wait := buckets.wait_time(who)):
            self._limited(wait)
        return who

    @staticmethod
    def _limited(wait: float) -> None:
        RATE_LIMITED.inc()
        raise errors.RateLimited("too many requests for this key", retry_after=wait)

    def _failed(self, exc: errors.JobqError, scope: Message, rid: str,
                shape: ErrorShape | None) -> Reply:
        status = http_errors.status_of(exc)
        if status >= 500:
            # the database's own words go to the log only, under the request id
            error_log.error("%s %s: %s", scope["method"], scope["path"], exc.message,
                            extra={"action": "storage_error"},
                            exc_info=status == 500)
        return http_errors.reply_for(exc, status, rid, shape)


async def read_body(headers: list[tuple[bytes, bytes]], receive: Receive, max_body: int,
                    body_timeout: float) -> bytes:
    """The request body, within `max_body` bytes, each part within `body_timeout` seconds
    (a body that stalls: 408, `errors.RequestTimeout`; one that goes away: `ClientGone`).
    One timer for a body that comes in one part (most do), re-armed for each further
    part: `asyncio.timeout` costs a dozen Python calls more a request. A body whose
    Content-Length is in is whole: granian sends an empty last part after it, a second
    wake-up of the loop that is not waited for."""
    declared = -1
    for key, value in headers:
        if key == b"content-length":
            if value.isdigit():
                declared = int(value)
                if declared > max_body:
                    raise errors.PayloadTooLarge(f"request body over {max_body} bytes")
            break
    chunks = []
    size = 0
    loop = asyncio.get_running_loop()
    stall = _Stall(asyncio.current_task(loop))
    timer = loop.call_at(loop.time() + body_timeout, stall)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                raise errors.PayloadTooLarge(f"request body over {max_body} bytes")
            chunks.append(chunk)
            if size == declared or not message.get("more_body", False):
                break
            timer.cancel()
            timer = loop.call_at(loop.time() + body_timeout, stall)
    except asyncio.CancelledError:
        if stall.expired():
            raise errors.RequestTimeout(
                f"the request body did not arrive within {body_timeout:g} s"
            ) from None
        raise
    finally:
        timer.cancel()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


#: Content-Type header values by media type, encoded once
_CONTENT_TYPES: dict[str, bytes] = {}


def _content_type(media_type: str) -> bytes:
    """The Content-Type of a media type: text in UTF-8, as Starlette gives it."""
    value = media_type
    if value.startswith("text/") and "charset=" not in value:
        value += "; charset=utf-8"
    encoded = value.encode("latin-1")
    if len(_CONTENT_TYPES) < 64:  # the few the server uses; never grows without bound
        _CONTENT_TYPES[media_type] = encoded
    return encoded


async def _send(send: Send, reply: Reply, rid: str, head: bool) -> None:
    """The answer, with the headers Starlette's Response would give it, then the id."""
    headers = []
    if reply.headers:
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                   for k, v in reply.headers.items()]
    status = reply.status
    body = reply.body
    stream = reply.stream
    if stream is None and not (status < 200 or status in (204, 304)):
        headers.append((b"content-length", b"%d" % len(body)))
    media_type = reply.media_type
    if media_type is not None:
        if media_type in _CONTENT_TYPES:
            content_type = _CONTENT_TYPES[media_type]
        else:
            content_type = _content_type(media_type)
        headers.append((b"content-type", content_type))
    headers.append((b"x-request-id", rid.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if stream is None:
        await send({"type": "http.response.body", "body": b"" if head else body})
        return
    try:
        if not head:
            if body:  # the first part, read before the status went out
                await send({"type": "http.response.body", "body": body, "more_body": True})
            async for part in stream:
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
    finally:
        await stream.aclose()
    await send({"type": "http.response.body", "body": b""})
