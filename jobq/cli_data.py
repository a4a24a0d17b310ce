"""`jobq items`, `jobq logs`, `jobq requests`: download what a job produced, over HTTP.

    jobq items 53/1/7 > items.jl                  # JSON lines, streamed
    jobq items 53/1/7 --format csv --fields url,price > items.csv
    jobq logs 53/1/7 --level ERROR --follow       # until the job finishes
    jobq requests 53/1/7

Large downloads show a progress bar on stderr (stdout stays the data).
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import click
import httpx
import orjson

from jobq.cli_options import APIKEY, URL, with_options

#: downloads of at least this many records get a progress bar
PROGRESS_MIN = 10_000
#: seconds between polls of `logs --follow`
FOLLOW_SECONDS = 1.0
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_FINAL_STATES = ("finished", "deleted")


#: `--url`, `--apikey` and the job's key
_options = with_options(URL, APIKEY, click.argument("key"))


def _job_key(key: str) -> str:
    parts = key.split("/")
    if len(parts) != 3 or not all(p.isdigit() and p != "0" for p in parts):
        raise click.BadParameter(f"{key!r} is not a job key like 53/7/81", param_hint="KEY")
    return key


def _client(url: str, apikey: str) -> httpx.Client:
    return httpx.Client(base_url=url.rstrip("/"), auth=(apikey, ""), timeout=60)


def _check(answer: httpx.Response) -> None:
    if answer.status_code >= 400:
        answer.read()
        raise click.ClickException(f"{answer.status_code}: {answer.text.strip()}")


def _total(http: httpx.Client, kind: str, key: str) -> int:
    answer = http.get(f"/{kind}/{key}/stats")
    _check(answer)
    return int(answer.json()["totals"]["input_values"])


def _download(url: str, apikey: str, kind: str, key: str, params: dict[str, Any],
              out: BinaryIO, project: Callable[[bytes], bytes] | None = None) -> None:
    """Stream records to `out` as they come, counting lines for the progress bar."""
    try:
        with _client(url, apikey) as http:
            total = _total(http, kind, key)
            with http.stream("GET", f"/{kind}/{key}", params=params) as answer:
                _check(answer)
                if total < PROGRESS_MIN:
                    for part in _parts(answer, project):
                        out.write(part)
                    return
                with click.progressbar(length=total, label=f"{kind} of {key}",
                                       file=sys.stderr) as bar:
                    for part in _parts(answer, project):
                        out.write(part)
                        bar.update(part.count(b"\n"))
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    finally:
        out.flush()


def _parts(answer: httpx.Response, project: Callable[[bytes], bytes] | None) -> Iterator[bytes]:
    if project is None:
        yield from answer.iter_bytes(1 << 16)
        return
    for line in answer.iter_lines():
        if line:
            yield project(line.encode())


def _fields_of(fields: str) -> Callable[[bytes], bytes]:
    names = fields.split(",")

    def project(line: bytes) -> bytes:
        record = orjson.loads(line)
        return orjson.dumps({n: record[n] for n in names if n in record}) + b"\n"

    return project


@click.command()
@_options
@click.option("--format", "fmt", type=click.Choice(["jl", "csv"]), default="jl",
              show_default=True)
@click.option("--fields", default=None, help="Comma-separated fields (required for csv).")
def items(url: str, apikey: str, key: str, fmt: str, fields: str | None) -> None:
    """Download a job's items (KEY like 53/7/81) to stdout."""
    key = _job_key(key)
    out = sys.stdout.buffer
    if fmt == "csv":
        if not fields:
            raise click.UsageError("--format csv needs --fields a,b,...")
        _download(url, apikey, "items", key, {"format": "csv", "fields": fields,
                                              "include_headers": "1"}, out)
    else:
        _download(url, apikey, "items", key, {}, out, _fields_of(fields) if fields else None)


@click.command()
@_options
def requests(url: str, apikey: str, key: str) -> None:
    """Download a job's requests (KEY like 53/7/81) to stdout, as JSON lines."""
    _download(url, apikey, "requests", _job_key(key), {}, sys.stdout.buffer)


def _log_line(record: dict[str, Any]) -> str:
    when = record.get("time")
    stamp = (datetime.datetime.fromtimestamp(when / 1000, datetime.UTC)
             .strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, int) else "-")
    level = record.get("level")
    name = next((n for n, v in LEVELS.items() if v == level), str(level))
    return f"{stamp} {name} {record.get('message', '')}"


@click.command()
@_options
@click.option("--level", type=click.Choice(list(LEVELS), case_sensitive=False), default=None,
              help="Only lines of this level or above.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new lines until the job finishes.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
def logs(url: str, apikey: str, key: str, level: str | None, follow: bool,
         as_json: bool) -> None:
    """Print a job's log (KEY like 53/7/81)."""
    key = _job_key(key)
    params: dict[str, Any] = {"meta": "_key"}
    if level:
        params["filter"] = orjson.dumps(["level", ">=", [LEVELS[level.upper()]]]).decode()
    try:
        with _client(url, apikey) as http:
            while True:
                # read the state first: lines written before it said finished are all in
                state = _state(http, key) if follow else None
                answer = http.get(f"/logs/{key}", params=params)
                _check(answer)
                for raw in answer.content.splitlines():
                    record = orjson.loads(raw)
                    params["startafter"] = record.pop("_key")
                    click.echo(orjson.dumps(record).decode() if as_json else _log_line(record))
                if not follow or state in _FINAL_STATES:
                    return
                time.sleep(FOLLOW_SECONDS)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


def _state(http: httpx.Client, key: str) -> str:
    answer = http.get(f"/jobs/{key}/state")
    _check(answer)
    state: str = answer.json()
    return state


def register(group: click.Group) -> None:
    for command in (items, logs, requests):
        group.add_command(command)
