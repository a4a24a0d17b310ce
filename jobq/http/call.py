"""What a handler gets (`Call`: the parsed request and the caller) and returns (`Reply`).
Both are plain slotted objects: one of each per request, nothing built that is not read."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import unquote_plus

from jobq.config import Settings
from jobq.core.app_api import AppApi
from jobq.core.credentials import Principal
from jobq.core.jobdata import JobData
from jobq.core.queue import JobQueue
from jobq.core.schedules import Schedules
from jobq.core.workers import Workers


class Query:
    """The query parameters, as `urllib.parse.parse_qsl` reads them (blank values kept);
    `get` gives a repeated parameter's last value, `getlist` all of them in order. Only
    parts with escapes go through `unquote_plus`: most requests have none."""

    __slots__ = ("_last", "_pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._last = dict(pairs)

    @classmethod
    def parse(cls, raw: bytes) -> Query:
        pairs = []
        for part in raw.decode("latin-1").split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if "%" in part or "+" in part:
                name, value = unquote_plus(name), unquote_plus(value)
            pairs.append((name, value))
        return cls(pairs)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._last.get(name, default)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value), in order."""
        return list(self._pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __bool__(self) -> bool:
        return bool(self._pairs)


EMPTY_QUERY = Query([])


@dataclass(slots=True)
class Services:
    """What the server holds for every request, set up at start-up."""

    settings: Settings
    queue: JobQueue
    #: the OpenAPI document, rendered once
    openapi: bytes
    #: what jobs produce: items, logs, requests
    jobdata: JobData
    #: the app API's job calls and the schedules of periodic jobs (issue 13)
    app_api: AppApi
    schedules: Schedules
    #: workers, leases and long-polling claims (`jobq.core.workers`)
    workers: Workers


class Call:
    """One request, parsed as its route declares."""

    __slots__ = ("_who", "args", "body", "headers", "query", "queue", "raw", "services")

    def __init__(self, services: Services, headers: list[tuple[bytes, bytes]],
                 query: Query, args: dict[str, Any], who: Principal | None) -> None:
        self.services = services
        self.queue: JobQueue = services.queue
        self.headers = headers
        self.query = query
        #: the path parameters and the parsed query parameters, by name
        self.args = args
        self._who = who
        self.raw = b""
        self.body: Any = None

    @property
    def who(self) -> Principal:
        """The caller (routes that are not public have one)."""
        assert self._who is not None
        return self._who

    def header(self, name: bytes) -> str:
        """A request header's value ("" when absent); `name` in lower case."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return ""


class Reply:
    """An answer: status, body, media type and extra headers; or, with `stream`, a body
    sent a part at a time as the iterator yields them (no Content-Length: chunked), for
    answers too large to hold in memory."""

    __slots__ = ("body", "headers", "media_type", "status", "stream")

    def __init__(self, body: bytes = b"", status: int = 200, media_type: str | None = None,
                 headers: dict[str, str] | None = None,
                 stream: AsyncGenerator[bytes, None] | None = None) -> None:
        self.body = body
        self.status = status
        self.media_type = media_type
        self.headers = headers
        self.stream = stream


def json_reply(body: bytes, status: int = 200) -> Reply:
    return Reply(body, status, "application/json")
