"""Reading request bodies: size limits first, then JSON lines, all checked before any
write so that a rejected request changes nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from jobq import errors


async def read_body(request: Request, max_body: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise errors.PayloadTooLarge(f"request body over {max_body} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise errors.PayloadTooLarge(f"request body over {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(raw: bytes, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"{where}: invalid JSON ({exc})") from None


def json_lines(body: bytes, max_line: int) -> list[Any]:
    """The JSON values of a JSON-lines body (blank lines skipped)."""
    if b"\n" not in body:  # one line: a single-job push, a startjob
        if len(body) > max_line:
            raise errors.PayloadTooLarge(f"line 1: over {max_line} bytes")
        return [_loads(body, "line 1")] if body.strip() else []
    values = []
    for number, raw in enumerate(body.split(b"\n"), 1):
        if len(raw) > max_line:
            raise errors.PayloadTooLarge(f"line {number}: over {max_line} bytes")
        if raw.strip():
            values.append(_loads(raw, f"line {number}"))
    return values


def json_value(body: bytes, max_line: int, what: str = "body") -> Any:
    """A body holding one JSON value."""
    if len(body) > max_line:
        raise errors.PayloadTooLarge(f"{what}: over {max_line} bytes")
    if not body.strip():
        raise errors.BadRequest(f"{what}: expected a JSON value, got an empty body")
    return _loads(body, what)


def objects(body: bytes, max_line: int) -> list[Any]:
    """JSON lines, or one JSON array of them (as `cancel` takes)."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        value: list[Any] = _loads(body, "body")  # the body limit applies, not the line limit
        return value
    return json_lines(body, max_line)


def form(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The fields of a urlencoded form body, in order (names repeat for lists)."""
    if content_type.lower().startswith("multipart/"):
        raise errors.BadRequest("body: send the form as application/x-www-form-urlencoded")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise errors.BadRequest("body: a urlencoded form must be UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)
