"""ASGI middleware around every request: request id, metrics by route, per-key rate
limits, a timeout on slow request bodies, and a log line for failures."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq import errors, logs, metrics
from jobq.config import Settings
from jobq.http import auth
from jobq.http import errors as http_errors

log = logging.getLogger("jobq.access")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# request ids: a random prefix for this process, then a counter (uuid4 a request costs more)
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@functools.cache
def _route_metrics(path: str, method: str, status: int) -> tuple[Any, Any]:
    """The metric children of a route (labels() costs a lookup and a lock a call)."""
    return (metrics.REQUESTS.labels(path, method, str(status)),
            metrics.REQUEST_SECONDS.labels(path, method))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
#: most keys whose rate buckets are kept at once
MAX_BUCKETS = 100_000


class TokenBuckets:
    """`rate` requests a second per key, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_time(self, key: str) -> float:
        """0 when a request may go now (and take a token), else seconds until one may."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1, now)
        return 0.0


class RequestContext:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.body_timeout = settings.body_timeout
        self.buckets = (
            TokenBuckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _SAFE_ID.fullmatch(given) else _new_request_id()
        token = logs.request_id.set(rid)
        start = time.perf_counter()
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        pending_body = [True]

        async def receive_in_time() -> Message:
            if not pending_body[0]:  # the body is in: later receives wait for a disconnect
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise errors.RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout:g} s"
                ) from None
            pending_body[0] = message.get("more_body", False)
            return message

        try:
            if self.buckets is not None and (wait := self._rate_wait(scope)):
                metrics.RATE_LIMITED.inc()
                # outside the app's exception handlers: render through the same table
                limited = errors.RateLimited("too many requests for this key", retry_after=wait)
                response = await http_errors.jobq_error(Request(scope), limited)
                await response(scope, receive, send_with_id)
                return
            await self.app(scope, receive_in_time, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            count, seconds = _route_metrics(path, method, status[0])
            count.inc()
            seconds.observe(elapsed)
            level = logging.WARNING if status[0] >= 500 else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(level, "%s %s %d", method, scope["path"], status[0],
                        extra={"action": "request", "status": status[0],
                               "duration_ms": round(elapsed * 1000, 3)})
            logs.request_id.reset(token)

    def _rate_wait(self, scope: Scope) -> float:
        assert self.buckets is not None
        user, _ = auth.credentials(Request(scope))
        return self.buckets.wait_time(user) if user else 0.0
