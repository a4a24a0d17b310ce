"""Rendering results in the format the client chose (`format` or `Accept`):
JSON lines (default), one JSON array, CSV, XML or plain text; `saveas` adds a
Content-Disposition header. Compression (gzip) is the middleware's job."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import orjson
from starlette.requests import Request
from starlette.responses import Response

from jobq import errors

JSONLINES = "application/x-jsonlines"
#: smallest body worth compressing (bytes), and the gzip level (speed over size)
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 5
FORMATS = {
    "jl": JSONLINES,
    "json": "application/json",
    "csv": "text/csv",
    "xml": "application/xml",
    "text": "text/plain",
}
_BY_MEDIA_TYPE = {media: name for name, media in FORMATS.items()}
_BY_MEDIA_TYPE["application/jsonlines"] = "jl"


def chosen_format(request: Request) -> str:
    name = request.query_params.get("format")
    if name is not None:
        if name not in FORMATS:
            raise errors.BadRequest(
                f"format: unknown format {name!r} (expected {', '.join(FORMATS)})"
            )
        return name
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _BY_MEDIA_TYPE:
            return _BY_MEDIA_TYPE[media]
    return "jl"


def _headers(request: Request) -> dict[str, str]:
    saveas = request.query_params.get("saveas")
    if saveas:
        safe = "".join(c for c in saveas if c.isprintable() and c not in '"\\/')
        if safe.isascii():
            return {"Content-Disposition": f'attachment; filename="{safe}"'}
        # headers are latin-1: a non-ASCII name goes in RFC 6266's filename*
        ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
        return {"Content-Disposition": f'attachment; filename="{ascii_name}";'
                                       f" filename*=UTF-8''{quote(safe, safe='')}"}
    return {}


def json_response(value: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code, media_type="application/json")


def rows_response(request: Request, rows: Iterable[Any]) -> Response:
    """A result made of rows (usually objects), in the client's format."""
    name = chosen_format(request)
    rows = list(rows)
    if name == "jl":
        body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    elif name == "json":
        body = orjson.dumps(rows)
    elif name == "csv":
        body = _csv(request, rows)
    elif name == "xml":
        body = _xml(rows)
    else:
        body = b"".join(_text(row) + b"\n" for row in rows)
    return _respond(request, body, FORMATS[name])


def value_response(request: Request, value: Any) -> Response:
    """A result that is one JSON value (a number, an object): JSON unless asked otherwise."""
    asked = request.query_params.get("format")
    # format=json is this value itself, not an array holding it
    if asked not in (None, "json") or "jsonlines" in request.headers.get("accept", ""):
        return rows_response(request, [value])
    return _respond(request, orjson.dumps(value), "application/json")


def _respond(request: Request, body: bytes, media_type: str) -> Response:
    """Compressed here rather than by a middleware around every request: only results can
    be large, and a middleware costs every small request a layer of wrapping."""
    headers = _headers(request)
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=media_type, headers=headers)


def _text(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _one_char(request: Request, name: str, default: str) -> str:
    value = request.query_params.get(name, default)
    if len(value) != 1:
        raise errors.BadRequest(f"{name}: expected one character, got {value!r}")
    return value


def _unescape(value: str, name: str) -> str:
    """`\\r\\n` as typed in a URL, made real characters."""
    try:
        return value.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        raise errors.BadRequest(f"{name}: {value!r} is not a valid escape sequence") from None


def _csv(request: Request, rows: list[Any]) -> bytes:
    fields_param = request.query_params.get("fields")
    if not fields_param:
        raise errors.BadRequest("fields: required with format=csv (comma-separated names)")
    fields = fields_param.split(",")
    lineend = _unescape(request.query_params.get("lineend", "\n"), "lineend")
    escape = request.query_params.get("escape")
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=_one_char(request, "sep", ","),
        quotechar=_one_char(request, "quote", '"'),
        escapechar=_one_char(request, "escape", "\\") if escape else None,
        doublequote=not escape,
        lineterminator=lineend,
    )
    if request.query_params.get("include_headers", "").lower() in ("1", "true", "yes"):
        writer.writerow(fields)
    for row in rows:
        record = row if isinstance(row, dict) else {}
        writer.writerow([_cell(record.get(f)) for f in fields])
    return out.getvalue().encode()


def _xml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(
            f"<value name={quoteattr(str(k))}>{_xml_value(v)}</value>"
            for k, v in value.items()
        )
    if isinstance(value, list):
        return "".join(f"<value>{_xml_value(v)}</value>" for v in value)
    return xml_escape(_cell(value))


def _xml(rows: list[Any]) -> bytes:
    items = "".join(f"<item>{_xml_value(row)}</item>" for row in rows)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<items>{items}</items>\n'.encode()
