"""What every endpoint needs: the queue service, the caller, path ids, bodies."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from jobq.config import Settings
from jobq.core.credentials import Principal
from jobq.core.queue import JobQueue
from jobq.domain.jobs import JobKey, parse_id
from jobq.http import auth, bodies


def queue(request: Request) -> JobQueue:
    service: JobQueue = request.app.state.queue
    return service


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


async def caller(request: Request) -> Principal:
    return await auth.principal(request)


def project_id(request: Request) -> int:
    return parse_id(request.path_params["pid"], "project id")


def spider_id(request: Request) -> int:
    return parse_id(request.path_params["sid"], "spider id")


def job_key(request: Request) -> JobKey:
    return JobKey(project_id(request), spider_id(request),
                  parse_id(request.path_params["jobno"], "job number"))


async def body(request: Request) -> bytes:
    return await bodies.read_body(request, settings(request).max_body)


async def json_lines(request: Request) -> list[Any]:
    return bodies.json_lines(await body(request), settings(request).max_line)


async def json_value(request: Request, what: str = "body") -> Any:
    return bodies.json_value(await body(request), settings(request).max_line, what)
