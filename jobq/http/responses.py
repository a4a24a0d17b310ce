"""Rendering results in the format the client chose (`format` or `Accept`):
JSON lines (default), one JSON array, CSV, XML or plain text; `saveas` adds a
Content-Disposition header. Compressed (gzip) here when large and the client accepts it."""

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

from jobq import errors
from jobq.core.queue import RenderedRows, json_default, plain
from jobq.http.call import Call, Reply

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


def chosen_format(call: Call) -> str:
    name = call.query.get("format")
    if name is not None:
        if name not in FORMATS:
            raise errors.BadRequest(
                f"format: unknown format {name!r} (expected {', '.join(FORMATS)})"
            )
        return name
    for part in call.header(b"accept").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _BY_MEDIA_TYPE:
            return _BY_MEDIA_TYPE[media]
    return "jl"


def download_headers(call: Call) -> dict[str, str]:
    """`saveas`: a Content-Disposition naming the file to save the answer as."""
    saveas = call.query.get("saveas")
    if saveas:
        safe = "".join(c for c in saveas if c.isprintable() and c not in '"\\/')
        if safe.isascii():
            return {"Content-Disposition": f'attachment; filename="{safe}"'}
        # headers are latin-1: a non-ASCII name goes in RFC 6266's filename*
        ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
        return {"Content-Disposition": f'attachment; filename="{ascii_name}";'
                                       f" filename*=UTF-8''{quote(safe, safe='')}"}
    return {}


def json_response(value: Any, status_code: int = 200) -> Reply:
    return Reply(orjson.dumps(value), status_code, "application/json")


def rows_response(call: Call, rows: Iterable[Any] | RenderedRows) -> Reply:
    """A result made of rows (usually objects), in the client's format. Rows that storage
    built as JSON text (`RenderedRows`, also inside a row) are written as they are in
    JSON lines and JSON, and read back into objects for the other formats."""
    name = chosen_format(call)
    if isinstance(rows, RenderedRows):
        if name == "jl":
            return _respond(call, rows.json_lines(), FORMATS[name])
        if name == "json":
            return _respond(call, rows.json_array(), FORMATS[name])
        rows = rows.rows()
    listed = list(rows)
    if name == "jl":
        body = b"".join(orjson.dumps(row, default=json_default) + b"\n" for row in listed)
    elif name == "json":
        body = orjson.dumps(listed, default=json_default)
    else:
        listed = plain(listed)
        if name == "csv":
            body = _csv(call, listed)
        elif name == "xml":
            body = _xml(listed)
        else:
            body = b"".join(_text(row) + b"\n" for row in listed)
    return _respond(call, body, FORMATS[name])


def value_response(call: Call, value: Any) -> Reply:
    """A result that is one JSON value (a number, an object): JSON unless asked otherwise."""
    asked = call.query.get("format")
    # format=json is this value itself, not an array holding it
    if asked not in (None, "json") or "jsonlines" in call.header(b"accept"):
        return rows_response(call, [value])
    return _respond(call, orjson.dumps(value), "application/json")


def _respond(call: Call, body: bytes, media_type: str) -> Reply:
    """Compressed here rather than by a middleware around every request: only results can
    be large, and a middleware costs every small request a layer of wrapping."""
    headers = download_headers(call)
    if len(body) >= GZIP_MIN_BYTES and "gzip" in call.header(b"accept-encoding"):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Reply(body, 200, media_type, headers)


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


def _one_char(call: Call, name: str, default: str) -> str:
    value = call.query.get(name, default)
    if len(value) != 1:
        raise errors.BadRequest(f"{name}: expected one character, got {value!r}")
    return value


def _unescape(value: str, name: str) -> str:
    """`\\r\\n` as typed in a URL, made real characters."""
    try:
        return value.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        raise errors.BadRequest(f"{name}: {value!r} is not a valid escape sequence") from None


class CsvOptions:
    """The CSV parameters of a request: `fields` (required), `include_headers`, `sep`,
    `quote`, `escape`, `lineend`; checked when made, before any row is written."""

    def __init__(self, call: Call) -> None:
        fields_param = call.query.get("fields")
        if not fields_param:
            raise errors.BadRequest("fields: required with format=csv (comma-separated names)")
        self.fields = fields_param.split(",")
        self.headers = call.query.get("include_headers", "").lower() in ("1", "true", "yes")
        escape = call.query.get("escape")
        self.options: dict[str, Any] = {
            "delimiter": _one_char(call, "sep", ","),
            "quotechar": _one_char(call, "quote", '"'),
            "escapechar": _one_char(call, "escape", "\\") if escape else None,
            "doublequote": not escape,
            "lineterminator": _unescape(call.query.get("lineend", "\n"), "lineend"),
        }

    def rows(self, rows: Iterable[Any], header: bool = True) -> bytes:
        """`rows` as CSV, after the header line when asked for and `header`."""
        out = io.StringIO()
        writer = csv.writer(out, **self.options)
        if header and self.headers:
            writer.writerow(self.fields)
        for row in rows:
            record = row if isinstance(row, dict) else {}
            writer.writerow([_cell(record.get(f)) for f in self.fields])
        return out.getvalue().encode()


def _csv(call: Call, rows: list[Any]) -> bytes:
    return CsvOptions(call).rows(rows)


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
