"""Job data (items, logs, requests) out: JSON lines, one JSON array, msgpack or CSV,
streamed a chunk at a time. Records go out as stored when no filter asks to read them:
meta fields (`_key`, `_ts`) are spliced into the stored JSON line without parsing it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson
import ormsgpack

from jobq import errors
from jobq.core.jobdata import Block
from jobq.domain.jobs import JobKey
from jobq.http.call import Call
from jobq.http.responses import CsvOptions

MEDIA_TYPES = {
    "jl": "application/x-jsonlines",
    "json": "application/json",
    "msgpack": "application/x-msgpack",
    "csv": "text/csv",
}
_BY_ACCEPT = {
    "application/x-msgpack": "msgpack",
    "application/msgpack": "msgpack",
    "application/x-jsonlines": "jl",
    "application/jsonlines": "jl",
    "application/json": "json",
    "text/csv": "csv",
}


def chosen_format(call: Call) -> str:
    """`format` (strict: an unknown one is a 400), else the first known `Accept` type,
    else JSON lines."""
    name = call.query.get("format")
    if name is not None:
        if name not in MEDIA_TYPES:
            raise errors.BadRequest(
                f"format: unknown format {name!r} (expected {', '.join(MEDIA_TYPES)})")
        return name
    for part in call.header(b"accept").split(","):
        found = _BY_ACCEPT.get(part.split(";", 1)[0].strip().lower())
        if found is not None:
            return found
    return "jl"


class Renderer:
    """Turns blocks of records into the bytes of one format."""

    def __init__(self, call: Call, fmt: str, job: JobKey, meta: Sequence[str],
                 nodata: bool) -> None:
        self.fmt = fmt
        self.meta = tuple(meta)
        self.nodata = nodata
        self._key_prefix = f"{job}/"
        self._first = True
        if fmt == "csv":
            self._csv = CsvOptions(call)

    def _meta_of(self, index: int, ts: int) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.meta:
            values[name] = self._key_prefix + str(index) if name == "_key" else ts
        return values

    def _spliced(self, block: Block) -> list[bytes]:
        """JSON lines with the meta fields spliced in front, no record parsed."""
        if not self.meta:
            return block.lines
        ts = b'"_ts":' + str(block.ts).encode() if "_ts" in self.meta else b""
        if "_key" not in self.meta:
            return [b"{" + ts + (b"}" if line == b"{}" else b"," + line[1:])
                    for line in block.lines]
        prefix = ('{"_key":"' + self._key_prefix).encode()
        after = b'",' + ts if ts else b'"'
        return [prefix + str(index).encode() + after + (b"}" if line == b"{}" else b"," + line[1:])
                for index, line in zip(block.indexes, block.lines, strict=True)]

    def _objects(self, block: Block) -> list[dict[str, Any]]:
        if self.nodata:
            return [self._meta_of(i, block.ts) for i in block.indexes]
        objects = block.objects()
        if self.meta:
            for index, obj in zip(block.indexes, objects, strict=True):
                obj.update(self._meta_of(index, block.ts))
        return objects

    def _lines(self, block: Block) -> list[bytes]:
        if self.nodata or (block._objects is not None and self.meta):
            return [orjson.dumps(o) for o in self._objects(block)]
        return self._spliced(block)

    def block(self, block: Block) -> bytes:
        if not block.indexes:
            return b""
        first, self._first = self._first, False
        if self.fmt == "jl":
            return b"\n".join(self._lines(block)) + b"\n"
        if self.fmt == "json":
            return (b"[" if first else b",") + b",".join(self._lines(block))
        if self.fmt == "msgpack":
            return _packed_items(self._objects(block))
        return self._csv.rows(self._objects(block), header=first)

    def end(self) -> bytes:
        if self.fmt == "json":
            return b"[]" if self._first else b"]"
        if self.fmt == "csv" and self._first:
            return self._csv.rows([], header=True)
        return b""

    async def stream(self, blocks: AsyncGenerator[Block, None]) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(blocks):  # a client gone stops the reads at once
            async for block in blocks:
                data = self.block(block)
                if data:
                    yield data
        tail = self.end()
        if tail:
            yield tail

    def one(self, block: Block) -> bytes:
        """A single record (`GET items/K/N`): the value itself, not a list."""
        if self.fmt == "msgpack":
            return bytes(ormsgpack.packb(self._objects(block)[0]))
        if self.fmt == "csv":
            return self._csv.rows(self._objects(block), header=True)
        line = self._lines(block)[0]
        return line + b"\n" if self.fmt == "jl" else line


def _packed_items(objects: list[dict[str, Any]]) -> bytes:
    """The msgpack of each object, back to back: one call packs the list, then the array
    header goes (much faster than a call per object)."""
    packed = ormsgpack.packb(objects)
    n = len(objects)
    header = 1 if n < 16 else 3 if n < 65536 else 5
    return bytes(packed[header:])
