"""The pipe protocol of `sh_scrapy.writer`: one message a line, `CMD <compact JSON>\\n`.

`CMD` is `LOG`, `ITM`, `REQ`, `STA` or `FIN`; a bare JSON object line counts as `ITM`
(RUNNER.md). The payload is kept as the raw JSON bytes the job wrote, so items, log lines
and requests go to the server without being decoded and encoded again; only `STA` and
`FIN` (and `LOG`, for its level) are parsed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

LOG, ITM, REQ, STA, FIN = "LOG", "ITM", "REQ", "STA", "FIN"
COMMANDS = frozenset({LOG, ITM, REQ, STA, FIN})
#: longest message the protocol allows (bytes, without the newline)
MAX_LINE = 1024 * 1024
#: log levels of the `logging` module
ERROR, INFO, WARNING = 40, 20, 30


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the pipe: its command and its payload as the job wrote it."""

    cmd: str
    raw: bytes

    def value(self) -> Any:
        return orjson.loads(self.raw)


def log_message(level: int, message: str, ms: int | None = None) -> Message:
    """A `LOG` message made by the worker itself (stdout/stderr lines, pipe errors)."""
    when = ms if ms is not None else int(time.time() * 1000)
    return Message(LOG, orjson.dumps({"time": when, "level": level, "message": message}))


def parse_line(line: bytes) -> Message:
    """The message of one line (without its newline). A line that is not a message of the
    protocol becomes an ERROR log line naming what is wrong: the job's output is never
    dropped silently, and one bad line does not stop the job."""
    if line.startswith(b"{"):
        cmd, raw = ITM, line
    else:
        head, _, raw = line.partition(b" ")
        cmd = head.decode("ascii", "replace")
        if cmd not in COMMANDS:
            return _bad(line, f"unknown command {cmd[:20]!r}")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _bad(line, f"{cmd} payload is not JSON ({exc})")
    if not isinstance(value, dict):
        return _bad(line, f"{cmd} payload is not a JSON object")
    return Message(cmd, raw)


def _bad(line: bytes, why: str) -> Message:
    text = line[:200].decode("utf-8", "replace")
    return log_message(ERROR, f"[jobq worker] unreadable pipe line: {why}: {text!r}")


def read_messages(fd: int, deliver: Callable[[Message], None]) -> None:
    """Read the pipe from `fd` until every writer closed it, and hand each message to
    `deliver`. `deliver` may block (a full buffer): the job then blocks on its next write,
    which is the back-pressure that pauses it without losing anything."""
    with os.fdopen(fd, "rb", buffering=1024 * 1024) as pipe:
        while True:
            line = pipe.readline(MAX_LINE + 1)
            if not line:
                return
            if not line.endswith(b"\n"):
                if len(line) <= MAX_LINE:  # the last line, without its newline
                    deliver(parse_line(line))
                    continue
                _skip_rest(pipe)
                deliver(_bad(line, f"longer than {MAX_LINE} bytes"))
                continue
            if line.strip():
                deliver(parse_line(line.rstrip(b"\r\n")))


def _skip_rest(pipe: Any) -> None:
    while True:
        chunk = pipe.readline(MAX_LINE)
        if not chunk or chunk.endswith(b"\n"):
            return
