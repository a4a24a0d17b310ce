"""What a job produces: its items, log lines and requests, each numbered from 0.

Pure rules only (no I/O): which kind of record a URL names, record keys
(`PID/SID/JOB/INDEX`), parsing a write batch (gzip JSON lines, one object a record),
stats, caps, and where a write with `start=N` lands (idempotent per index: a retried
batch never duplicates). Reading rules are in `records_query`.
"""

from __future__ import annotations

import enum
import gzip
import itertools
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from jobq import errors
from jobq.domain.jobs import JobKey, State

#: largest record (bytes of its JSON line), as the hosted service and the client's writer
MAX_RECORD_BYTES = 1024 * 1024
#: most distinct names (item fields, log levels) a stream's stats count: the head is
#: rewritten by every batch, so items with ever new field names must not grow it unbounded
MAX_COUNTED = 1000
#: meta fields the server gives every record (a record's own are dropped on write)
META_FIELDS = ("_key", "_ts")


class Kind(enum.Enum):
    """The three per-job resources of the storage API."""

    ITEMS = "items"
    LOGS = "logs"
    REQUESTS = "requests"

    @property
    def code(self) -> int:
        """How the kind is stored (a small integer column)."""
        return _CODES[self]

    @property
    def cap_setting(self) -> str:
        """The project setting that caps the records of one job."""
        return f"job_{self.value}_max"

    @property
    def truncated_field(self) -> str:
        """The job metadata field set when the cap was hit."""
        return f"{self.value}_truncated"

    @property
    def noun(self) -> str:
        return "log lines" if self is Kind.LOGS else self.value


_CODES = {Kind.ITEMS: 0, Kind.LOGS: 1, Kind.REQUESTS: 2}

#: caps per job when the project sets none (None: no cap). Items are uncapped: they are
#: what a crawl is for; logs and requests get a guard against a runaway job.
DEFAULT_CAPS: dict[Kind, int | None] = {
    Kind.ITEMS: None,
    Kind.LOGS: 10_000_000,
    Kind.REQUESTS: 100_000_000,
}


def cap_of(kind: Kind, settings: dict[str, Any]) -> int | None:
    """The cap of one job's records of `kind` from the project's settings (0 or null:
    no cap)."""
    if kind.cap_setting not in settings:
        return DEFAULT_CAPS[kind]
    value = settings[kind.cap_setting]
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.BadRequest(f"setting {kind.cap_setting}: expected a non-negative integer")
    return value


# -- record keys ------------------------------------------------------------------------

_ID = r"([1-9][0-9]{0,17})"
_RECORD_KEY = re.compile(rf"{_ID}/{_ID}/{_ID}/(0|[1-9][0-9]{{0,17}})")


def record_key(job: JobKey, index: int) -> str:
    return f"{job}/{index}"


def parse_record_key(text: str, job: JobKey, what: str) -> int:
    """The index in `PID/SID/JOB/INDEX`, which must name a record of `job`."""
    match = _RECORD_KEY.fullmatch(text)
    if match is None:
        raise errors.BadRequest(f"{what}: {text!r} is not a record key like {job}/0")
    if JobKey(*(int(g) for g in match.groups()[:3])) != job:
        raise errors.BadRequest(f"{what}: {text!r} is not a record of job {job}")
    return int(match.group(4))


def parse_index(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise errors.BadRequest(f"{what}: {text!r} is not a record index")
    return int(text)


# -- write batches ----------------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    """The records of one write: their JSON lines as stored, and the parsed objects."""

    kind: Kind
    lines: list[bytes] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)

    def stats(self, lo: int = 0, hi: int | None = None) -> Stats:
        objects = self.objects[lo:hi]
        if self.kind is Kind.LOGS:
            counted = Counter(str(o["level"]) for o in objects if o.get("level") is not None)
        else:
            counted = Counter(itertools.chain.from_iterable(objects))
        return Stats(len(objects), sum(map(len, self.lines[lo:hi])), dict(counted))


@dataclass(slots=True)
class Stats:
    """`GET .../stats`: counts (by log level, or by item field) and totals."""

    input_values: int = 0
    input_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, size: int, names: Iterable[str]) -> None:
        self.input_values += 1
        self.input_bytes += size
        counts = self.counts
        for name in names:
            counts[name] = counts.get(name, 0) + 1

    def merge(self, other: Stats) -> None:
        self.input_values += other.input_values
        self.input_bytes += other.input_bytes
        counts = self.counts
        for name, n in other.counts.items():
            if name in counts:
                counts[name] += n
            elif len(counts) < MAX_COUNTED:
                counts[name] = n

    def render(self) -> dict[str, Any]:
        return {"counts": self.counts,
                "totals": {"input_bytes": self.input_bytes, "input_values": self.input_values}}


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent, undone of its Content-Encoding (gzip or none); at most `limit`
    bytes once inflated (413 past it)."""
    name = (encoding or "identity").strip().lower()
    if name in ("identity", ""):
        return body
    if name not in ("gzip", "x-gzip"):
        raise errors.BadRequest(f"Content-Encoding: {encoding!r} is not supported (gzip or none)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit:
            raise errors.PayloadTooLarge(f"body: over {limit} bytes once inflated")
        if not inflater.eof or inflater.unused_data:
            # a gzip body may hold several members (as `cat a.gz b.gz`)
            out = gzip.decompress(body)
            if len(out) > limit:
                raise errors.PayloadTooLarge(f"body: over {limit} bytes once inflated")
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise errors.BadRequest(f"body: Content-Encoding says gzip but the body is not gzip"
                                f" ({exc})") from None
    return out


def parse_batch(kind: Kind, body: bytes, first_index: int | None) -> Batch:
    """A JSON-lines body as records (blank lines skipped). Every record is checked before
    anything is stored: a JSON object, at most `MAX_RECORD_BYTES`. A record is stored as
    sent, less the server's meta fields."""
    batch = Batch(kind)
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_RECORD_BYTES:
            raise errors.PayloadTooLarge(f"{_where(number, first_index, len(batch))}:"
                                         f" record over {MAX_RECORD_BYTES} bytes")
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"{_where(number, first_index, len(batch))}:"
                                    f" invalid JSON ({exc})") from None
        if type(value) is not dict:
            raise errors.BadRequest(f"{_where(number, first_index, len(batch))}: expected a"
                                    f" JSON object, got {type(value).__name__}")
        if "_key" in value or "_ts" in value:
            for name in META_FIELDS:
                value.pop(name, None)
            line = orjson.dumps(value)
        elif not value:
            line = b"{}"  # reads splice meta fields in after the `{`: no `{ }`
        batch.lines.append(line)
        batch.objects.append(value)
    return batch


def _where(number: int, first_index: int | None, nth: int) -> str:
    if first_index is None:
        return f"line {number}"
    return f"line {number} (index {first_index + nth})"


# -- where a write lands --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """Which records of a batch to store (`lo`..`hi` of the batch), at which index the
    first of them goes, and whether the job's cap cut the batch short."""

    lo: int
    hi: int
    first_index: int
    capped: int = 0

    @property
    def stored(self) -> int:
        return self.hi - self.lo


def place(
    key: JobKey, kind: Kind, state: State | None, admin: bool,
    next_index: int, start: int | None, n: int, cap: int | None,
) -> Placement:
    """Where a batch of `n` records written with `start` goes, given the job's state and
    the `next_index` of its records. Raises NotFound, Conflict (a job that is not running,
    or a gap before `start`); a batch over the cap is cut (`capped` records left out)."""
    if state is None or state is State.REMOVED:
        raise errors.NotFound(f"no job {key}")
    if state is not State.RUNNING and not (admin and state is not State.DELETED):
        raise errors.Conflict(f"job {key} is {state.label}: only a running job accepts"
                              f" {kind.noun} (its data is final)")
    begin = next_index if start is None else start
    if begin > next_index:
        raise errors.BadRequest(f"start: {begin} does not match the next index {next_index}"
                                f" of job {key}'s {kind.noun}")
    # the records below next_index are stored already: a retried batch, skipped
    lo = min(n, next_index - begin)
    hi = n
    capped = 0
    if cap is not None and next_index + (hi - lo) > cap:
        capped = next_index + (hi - lo) - cap
        hi = max(lo, hi - capped)
    return Placement(lo, hi, next_index, capped)
