"""What a handler gets (`Call`: the parsed request and the caller) and returns (`Reply`).
Both are plain slotted objects: one of each per request, nothing built that is not read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from jobq.config import Settings
from jobq.core.credentials import Principal
from jobq.core.queue import JobQueue

EMPTY_QUERY = QueryParams("")


@dataclass(slots=True)
class Services:
    """What the server holds for every request, set up at start-up."""

    settings: Settings
    queue: JobQueue
    #: the OpenAPI document, rendered once
    openapi: bytes


class Call:
    """One request, parsed as its route declares."""

    __slots__ = ("_who", "args", "body", "headers", "query", "raw", "services")

    def __init__(self, services: Services, headers: list[tuple[bytes, bytes]],
                 query: QueryParams, args: dict[str, Any], who: Principal | None) -> None:
        self.services = services
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

    @property
    def queue(self) -> JobQueue:
        return self.services.queue

    def header(self, name: bytes) -> str:
        """A request header's value ("" when absent); `name` in lower case."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return ""


class Reply:
    """An answer: status, body, media type and extra headers."""

    __slots__ = ("body", "headers", "media_type", "status")

    def __init__(self, body: bytes = b"", status: int = 200, media_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.media_type = media_type
        self.headers = headers


def json_reply(body: bytes, status: int = 200) -> Reply:
    return Reply(body, status, "application/json")
