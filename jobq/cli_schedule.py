"""`jobq schedule ...`: periodic jobs, managed over HTTP like `jobq push`
(`--url`, `--apikey`, `JOBQ_URL`, `JOBQ_APIKEY`)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx
import orjson

from jobq.cli_options import http_command
from jobq.client import Client, JobqClientError

T = TypeVar("T")

COLUMNS = ["id", "spider", "when", "next_run", "last_job", "last_outcome", "paused"]


def _call(url: str, apikey: str, action: Callable[[Client], T]) -> T:
    try:
        with Client(url, apikey) as client:
            return action(client)
    except JobqClientError as exc:
        try:
            message = exc.response.json()["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.response.text.strip()
        raise click.ClickException(f"{exc.response.status_code}: {message}") from None
    except (OSError, httpx.TransportError) as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        found[name] = value
    return found


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    cells = [[_cell(row, c) for c in COLUMNS] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(COLUMNS)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if column == "next_run" and value:
        # the schedule's own zone, with its offset: never a bare local or UTC time
        return str(datetime.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S%z"))
    if column == "paused":
        return "paused" if value else ""
    return "" if value is None else str(value)


@click.group()
def schedule() -> None:
    """Periodic jobs: each tick pushes one job, once, whichever servers are up."""


@schedule.command("add")
@http_command
@click.argument("project", type=click.IntRange(1))
@click.argument("spider")
@click.option("--cron", default=None, help='5-field cron expression, e.g. "0 3 * * *".')
@click.option("--tz", default="UTC", show_default=True, help="IANA zone of --cron.")
@click.option("--every", default=None, help="A fixed interval instead: 30s, 15m, 6h, 1d.")
@click.option("-a", "--arg", "args", multiple=True, help="Spider argument NAME=VALUE.")
@click.option("-s", "--set", "job_settings", multiple=True, help="Job setting NAME=VALUE.")
@click.option("--tag", "tags", multiple=True, help="A tag of the jobs (repeatable).")
@click.option("--priority", type=click.IntRange(0, 4), default=2, show_default=True)
@click.option("--units", type=click.IntRange(1), default=1, show_default=True)
@click.option("--overlap", type=click.Choice(["skip", "allow"]), default="skip",
              show_default=True, help="skip: no new job while the last one is active.")
@click.option("--catch-up", type=click.Choice(["latest", "none", "all"]), default="latest",
              show_default=True, help="Which ticks missed while down still fire.")
@click.option("--catch-up-max", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--description", default="")
def add(url: str, apikey: str, as_json: bool, project: int, spider: str, cron: str | None,
        tz: str, every: str | None, args: tuple[str, ...], job_settings: tuple[str, ...],
        tags: tuple[str, ...], priority: int, units: int, overlap: str, catch_up: str,
        catch_up_max: int, paused: bool, description: str) -> None:
    """Create a schedule of SPIDER in PROJECT (--cron or --every)."""
    if (cron is None) == (every is None):
        raise click.UsageError("give exactly one of --cron and --every")
    fields: dict[str, Any] = {
        "spider": spider, "args": _pairs(args, "--arg"),
        "job_settings": _pairs(job_settings, "--set"), "tags": list(tags),
        "priority": priority, "units": units, "overlap": overlap, "catch_up": catch_up,
        "catch_up_max": catch_up_max, "paused": paused, "description": description,
    }
    if cron is not None:
        fields.update(cron=cron, tz=tz)
    else:
        fields["every"] = every
    made = _call(url, apikey, lambda c: c.add_schedule(project, fields))
    _show([made], as_json)


@schedule.command("list")
@http_command
@click.argument("project", type=click.IntRange(1))
def list_schedules(url: str, apikey: str, as_json: bool, project: int) -> None:
    """The schedules of PROJECT, with their next run and last outcome."""
    _show(_call(url, apikey, lambda c: c.schedules(project)), as_json)


def _action(name: str, action: str, help_text: str) -> click.Command:
    @http_command
    @click.argument("project", type=click.IntRange(1))
    @click.argument("schedule_id", type=click.IntRange(1))
    def command(url: str, apikey: str, as_json: bool, project: int, schedule_id: int) -> None:
        if action == "delete":
            _call(url, apikey, lambda c: c.delete_schedule(project, schedule_id))
            click.echo(f"deleted schedule {schedule_id}")
            return
        answer = _call(url, apikey, lambda c: c.schedule_action(project, schedule_id, action))
        if action == "run":
            click.echo(orjson.dumps(answer).decode() if as_json else answer["jobid"])
        else:
            _show([answer["schedule"]], as_json)

    command.__doc__ = help_text
    return click.command(name)(command)


schedule.add_command(_action("pause", "pause", "Pause schedule SCHEDULE_ID of PROJECT."))
schedule.add_command(_action("resume", "resume",
                             "Resume a schedule; ticks missed while paused do not fire."))
schedule.add_command(_action("rm", "delete", "Delete a schedule (its jobs stay)."))
schedule.add_command(_action("run-now", "run", "Push the schedule's job now; prints its key."))
