"""The `jobq` command: `serve`, `migrate`, `keys`, and terminal tools that talk HTTP to a
server (`push`, `list`, `summary`, `start`, `finish`, `delete`, `cancel`, `count`).

Every option also reads a `JOBQ_*` variable, named in `--help`.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import click
import httpx
import orjson

from jobq import cli_data, errors, logs
from jobq.cli_options import http_command
from jobq.client import Client, JobqClientError
from jobq.config import Settings
from jobq.core import credentials
from jobq.domain import jobs
from jobq.storage import DEFAULT_URL, open_storage
from jobq.storage.base import Storage

T = TypeVar("T")

token_lifetime_option = click.option(
    "--token-lifetime", envvar="JOBQ_TOKEN_LIFETIME", show_envvar=True,
    default=credentials.DEFAULT_TOKEN_LIFETIME, show_default=True, type=click.IntRange(60),
    help="Seconds a job token works (a worker's heartbeat renews it).",
)
db_option = click.option(
    "--db", envvar="JOBQ_DB", show_envvar=True, default=DEFAULT_URL, show_default=True,
    help="Database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobq")
def main() -> None:
    """jobq: a self-hosted JobQ (the Scrapy Cloud job queue protocol)."""


@main.command()
@click.option("--host", envvar="JOBQ_HOST", show_envvar=True, default="127.0.0.1",
              show_default=True, help="Address to listen on.")
@click.option("--port", envvar="JOBQ_PORT", show_envvar=True, default=2424, show_default=True,
              type=click.IntRange(0, 65535), help="Port to listen on.")
@db_option
@click.option("--admin-key", envvar="JOBQ_ADMIN_KEY", show_envvar=True, default=None,
              help="An admin API key. Without one, the first start makes one and prints it.")
@click.option("--sqlite-synchronous", envvar="JOBQ_SQLITE_SYNCHRONOUS", show_envvar=True,
              type=click.Choice(["FULL", "NORMAL"], case_sensitive=False), default="FULL",
              show_default=True,
              help="FULL survives a power cut; NORMAL may lose the last commits on one.")
@click.option("--pool-size", envvar="JOBQ_POOL_SIZE", show_envvar=True, default=10,
              show_default=True, type=click.IntRange(1, 1000),
              help="PostgreSQL connections per server process.")
@click.option("--max-count", envvar="JOBQ_MAX_COUNT", show_envvar=True, default=100_000,
              show_default=True, type=click.IntRange(1),
              help="Most rows one list or summary may ask for.")
@click.option("--max-body", envvar="JOBQ_MAX_BODY", show_envvar=True,
              default=64 * 1024 * 1024, show_default=True, type=click.IntRange(1),
              help="Largest request body, in bytes (413 past it).")
@click.option("--rate-limit", envvar="JOBQ_RATE_LIMIT", show_envvar=True, default=0.0,
              show_default=True, type=click.FloatRange(0),
              help="Requests a second allowed per API key (0: no limit); 429 past it.")
@click.option("--rate-burst", envvar="JOBQ_RATE_BURST", show_envvar=True, default=100,
              show_default=True, type=click.IntRange(1),
              help="Requests a key may send at once above --rate-limit.")
@click.option("--body-timeout", envvar="JOBQ_BODY_TIMEOUT", show_envvar=True, default=30.0,
              show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for each part of a request body (408 past it).")
@click.option("--token-secret-file", envvar="JOBQ_TOKEN_SECRET_FILE", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False), default=None,
              help="File of job-token signing secrets, one a line, the signing one first"
                   " (or the secret itself in JOBQ_TOKEN_SECRET). Without either they are"
                   " kept in the database.")
@click.option("--token-secret", envvar="JOBQ_TOKEN_SECRET", hidden=True, default=None)
@token_lifetime_option
@click.option("--metrics-key", envvar="JOBQ_METRICS_KEY", show_envvar=True, default=None,
              help="A key /metrics asks for (bearer token or API key); without one"
                   " /metrics is open.")
@click.option("--data-janitor-seconds", envvar="JOBQ_DATA_JANITOR_SECONDS", show_envvar=True,
              default=30.0, show_default=True, type=click.FloatRange(0.01),
              help="Seconds between removals of deleted and expired jobs' items, logs, requests.")
@click.option("--worker-timeout", envvar="JOBQ_WORKER_TIMEOUT", show_envvar=True, default=60.0,
              show_default=True, type=click.FloatRange(0.5),
              help="Seconds without a heartbeat before a worker's jobs are lost.")
@click.option("--cancel-timeout", envvar="JOBQ_CANCEL_TIMEOUT", show_envvar=True, default=300.0,
              show_default=True, type=click.FloatRange(0.1),
              help="Seconds a cancelled job of a worker may run on before cancel_timeout.")
@click.option("--log-level", envvar="JOBQ_LOG_LEVEL", show_envvar=True, default="info",
              show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--log-format", envvar="JOBQ_LOG_FORMAT", show_envvar=True, default="text",
              show_default=True, type=click.Choice(["text", "json"]),
              help="json: one JSON object a line, with the request id.")
@click.option("--http-server", envvar="JOBQ_HTTP_SERVER", show_envvar=True, default="granian",
              show_default=True, type=click.Choice(["granian", "uvicorn"]),
              help="The HTTP server software (granian: about twice uvicorn's speed).")
@click.option("--workers", envvar="JOBQ_WORKERS", show_envvar=True, default=1,
              show_default=True, type=click.IntRange(1, 256),
              help="Server processes on this node, sharing the port (PostgreSQL and"
                   " granian only: a SQLite file has one writer).")
def serve(host: str, port: int, db: str, admin_key: str | None, sqlite_synchronous: str,
          pool_size: int, max_count: int, max_body: int, rate_limit: float, rate_burst: int,
          body_timeout: float, token_secret_file: str | None, token_secret: str | None,
          token_lifetime: int, metrics_key: str | None, data_janitor_seconds: float,
          worker_timeout: float, cancel_timeout: float, log_level: str, log_format: str,
          http_server: str, workers: int) -> None:
    """Run the server in the foreground."""
    from jobq.http import serving
    from jobq.http.app import create_app

    settings = Settings(
        db=db, host=host, port=port, admin_keys=(admin_key,) if admin_key else (),
        sqlite_synchronous=sqlite_synchronous.upper(), pool_size=pool_size,
        max_count=max_count, max_body=max_body, rate_limit=rate_limit, rate_burst=rate_burst,
        body_timeout=body_timeout, token_secrets=_token_secrets(token_secret_file, token_secret),
        token_lifetime=token_lifetime, metrics_key=metrics_key or None,
        data_janitor_seconds=data_janitor_seconds,
        worker_timeout=worker_timeout, cancel_timeout=cancel_timeout,
    )
    _check_workers(workers, settings.db, http_server)
    logs.configure(log_level, log_format)
    storage = _storage(settings)
    _run_storage(lambda: storage.prepare())  # refuse a database before serving it
    if workers > 1:
        # each process opens its own storage (pool, group commit) after the fork
        serving.run_workers(lambda: create_app(settings, _storage(settings)), workers, host,
                            port, log_level)
        return
    app = create_app(settings, storage)
    serving.run(app, host, port, log_level, http_server, on_stop=app.drain,
                started=app.started)


def _check_workers(workers: int, db: str, http_server: str) -> None:
    if workers == 1:
        return
    if db.startswith("sqlite"):
        raise DatabaseFault("--workers needs PostgreSQL: a SQLite database has one writer,"
                            " so one server process serves it")
    if http_server != "granian":
        raise DatabaseFault("--workers needs --http-server granian (its listener shares"
                            " the port between processes)")


def _token_secrets(path: str | None, value: str | None) -> tuple[str, ...]:
    try:
        if path is not None:
            with open(path, encoding="utf-8") as file:
                return tuple(credentials.parse_secrets(file.read(), path))
        if value:
            return tuple(credentials.parse_secrets(value, "JOBQ_TOKEN_SECRET"))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the token secret file: {exc}") from None
    except errors.JobqError as exc:
        raise click.UsageError(exc.message) from None
    return ()


def _storage(settings: Settings) -> Storage:
    options: dict[str, Any] = {}
    if settings.db.startswith("sqlite"):
        options["synchronous"] = settings.sqlite_synchronous
    else:
        options["pool_size"] = settings.pool_size
    try:
        return open_storage(settings.db, **options)
    except errors.JobqError as exc:
        raise click.UsageError(exc.message) from None


class DatabaseFault(click.ClickException):
    """A database jobq must not use (not jobq's, newer, damaged): a one-line error and
    exit status 2, as for any other wrong argument."""

    exit_code = 2


def _run_storage(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run storage work to its end; its errors become one line on stderr."""
    try:
        return asyncio.run(work())
    except errors.StorageFault as exc:
        raise DatabaseFault(_one_line(exc.message)) from None
    except errors.JobqError as exc:
        raise click.ClickException(_one_line(exc.message)) from None


def _one_line(message: str) -> str:
    """A driver's message may span lines (libpq's do): a log or terminal wants one."""
    return " ".join(message.split())


def _with_storage(db: str, action: Callable[[Storage], Awaitable[T]]) -> T:
    async def run() -> T:
        storage = _storage(Settings(db=db))
        await storage.open()
        try:
            return await action(storage)
        finally:
            await storage.close()

    return _run_storage(run)


@main.command()
@db_option
def migrate(db: str) -> None:
    """Create the schema or bring it up to date, then exit."""

    async def nothing(storage: Storage) -> None:
        return None

    _with_storage(db, nothing)
    click.echo("schema is up to date")


@main.command()
@db_option
@click.argument("destination", type=click.Path(dir_okay=False))
def backup(db: str, destination: str) -> None:
    """Copy a live SQLite database into DESTINATION (for PostgreSQL use pg_dump)."""

    async def copy(storage: Storage) -> None:
        backup_to = getattr(storage, "backup", None)
        if backup_to is None:
            raise errors.JobqError("jobq backup is for SQLite; back PostgreSQL up with pg_dump")
        await backup_to(destination)

    _with_storage(db, copy)
    click.echo(f"backed up to {destination}")


@main.group()
def keys() -> None:
    """Manage API keys (directly in the database)."""


@keys.command("create")
@db_option
@click.option("--project", type=click.IntRange(1, jobs.MAX_ID), default=None,
              help="The one project the key reaches.")
@click.option("--admin", is_flag=True, help="Make an admin key (reaches every project).")
@click.option("--name", default=None, help="Shown as scheduled_by/started_by of its jobs.")
def keys_create(db: str, project: int | None, admin: bool, name: str | None) -> None:
    """Create a key and print it (it is stored only as a hash)."""
    if (project is None) == (not admin):
        raise click.UsageError("give exactly one of --project N or --admin")
    secret = credentials.new_api_key()
    label = name or (credentials.ADMIN if admin else f"project-{project}")
    _with_storage(db, lambda s: s.create_api_key(credentials.hash_key(secret), label, project))
    click.echo(secret)


@keys.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def keys_list(db: str, as_json: bool) -> None:
    """List keys (never the secrets)."""
    found = _with_storage(db, lambda s: s.list_api_keys())
    rows = [
        {"id": k.key_id, "name": k.name,
         "project": k.project if k.project is not None else "admin",
         "created": _iso(k.created_ms), "revoked": _iso(k.revoked_ms) if k.revoked_ms else ""}
        for k in found
    ]
    _print_rows(rows, ["id", "name", "project", "created", "revoked"], as_json)


@keys.command("revoke")
@db_option
@click.argument("key_id", type=int)
def keys_revoke(db: str, key_id: int) -> None:
    """Revoke a key by its id (see `jobq keys list`)."""
    if not _with_storage(db, lambda s: s.revoke_api_key(key_id)):
        raise click.ClickException(f"no live key with id {key_id}")
    click.echo(f"revoked key {key_id}")


@keys.command("rotate-token-secret")
@db_option
@token_lifetime_option
def keys_rotate_token_secret(db: str, token_lifetime: int) -> None:
    """Sign job tokens with a new secret from now on. Tokens signed with an older one work
    until they expire; secrets no unexpired token can use are forgotten. (Servers given
    --token-secret-file or JOBQ_TOKEN_SECRET do not read these: edit that instead.)"""
    name, forgotten = _with_storage(
        db, lambda s: credentials.rotate_secret(s, lifetime=token_lifetime)
    )
    click.echo(f"new token secret {name}; servers sign with it within"
               f" {credentials.SECRET_REFRESH_SECONDS:.0f} seconds")
    for old in forgotten:
        click.echo(f"forgot {old}")


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, int) and value > 10**12:  # a millisecond timestamp
        return _iso(value)
    return str(value)


# -- terminal tools over HTTP ------------------------------------------------------------

def _call(url: str, apikey: str, action: Callable[[Client], T]) -> T:
    try:
        with Client(url, apikey) as client:
            return action(client)
    except JobqClientError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, httpx.TransportError) as exc:  # httpx's are not OSErrors
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


def _job_rows(rows: Iterable[dict[str, Any]], as_json: bool) -> None:
    _print_rows(list(rows), ["key", "state", "spider", "ts", "tags"], as_json)


def _project_of(key: str) -> int:
    head = key.split("/", 1)[0]
    if not head.isdigit():
        raise click.BadParameter(f"{key!r} is not a job key like 53/7/81")
    return int(head)


@main.command()
@http_command
@click.argument("project", type=click.IntRange(1))
@click.argument("spider")
@click.option("--priority", type=click.IntRange(0, 4), default=None)
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--meta", "meta", multiple=True, help="A NAME=VALUE metadata field (repeatable).")
@click.option("-a", "--arg", "spider_args", multiple=True,
              help="A spider argument NAME=VALUE (repeatable), as `scrapy crawl -a`.")
@click.option("-s", "--set", "job_settings", multiple=True,
              help="A Scrapy setting NAME=VALUE for this job (repeatable), as `scrapy crawl -s`.")
@click.option("--units", type=click.IntRange(1), default=None, help="Units the job takes.")
def push(url: str, apikey: str, as_json: bool, project: int, spider: str, priority: int | None,
         tags: tuple[str, ...], meta: tuple[str, ...], spider_args: tuple[str, ...],
         job_settings: tuple[str, ...], units: int | None) -> None:
    """Push one job of SPIDER into PROJECT's pending queue."""
    job = new_job(spider, priority, tags, spider_args, job_settings, units)
    for item in meta:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--meta")
        job[name] = value
    rows = _call(url, apikey, lambda c: c.push(project, [job]))
    _print_rows(rows, ["key", "error"], as_json)


def new_job(spider: str, priority: int | None, tags: Sequence[str], spider_args: Sequence[str],
            job_settings: Sequence[str], units: int | None) -> dict[str, Any]:
    """A job to push, with `spider_args` and `job_settings` stored as the app API stores
    them (dicts of strings in the job's metadata)."""
    job: dict[str, Any] = {"spider": spider}
    if priority is not None:
        job["priority"] = priority
    if tags:
        job["tags"] = list(tags)
    if spider_args:
        job["spider_args"] = _pairs(spider_args, "-a")
    if job_settings:
        job["job_settings"] = _pairs(job_settings, "-s")
    if units is not None:
        job["units"] = units
    return job


def _pairs(items: Sequence[str], hint: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=hint)
        out[name] = value
    return out


@main.command("list")
@http_command
@click.argument("project", type=click.IntRange(1))
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "running", "finished"]), help="Queue (repeatable).")
@click.option("--spider", default=None)
@click.option("--stop", default=None, help="Stop before this job key (incremental sync).")
@click.option("--count", type=click.IntRange(1), default=None)
def list_command(url: str, apikey: str, as_json: bool, project: int, states: tuple[str, ...],
                 spider: str | None, stop: str | None, count: int | None) -> None:
    """List jobs of PROJECT, newest first."""
    params = {"state": list(states), "spider": spider, "stop": stop, "count": count}
    params = {k: v for k, v in params.items() if v}
    _job_rows(_call(url, apikey, lambda c: c.list_jobs(project, **params)), as_json)


@main.command()
@http_command
@click.argument("project", type=click.IntRange(1))
def summary(url: str, apikey: str, as_json: bool, project: int) -> None:
    """Jobs in each queue of PROJECT."""
    rows = _call(url, apikey, lambda c: c.summary(project))
    _print_rows(rows, ["name", "count"], as_json)


@main.command()
@http_command
@click.argument("project", type=click.IntRange(1))
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "running", "finished"]), help="Queue (repeatable).")
def count(url: str, apikey: str, as_json: bool, project: int, states: tuple[str, ...]) -> None:
    """How many jobs of PROJECT are in the given queues (default: finished)."""
    params = {"state": list(states)} if states else {}
    n = _call(url, apikey, lambda c: c.count(project, **params))
    click.echo(orjson.dumps(n).decode() if as_json else str(n))


@main.command()
@http_command
@click.argument("project", type=click.IntRange(1))
@click.option("--worker", default=None, help="Recorded as the job's worker.")
def start(url: str, apikey: str, as_json: bool, project: int, worker: str | None) -> None:
    """Claim the next pending job of PROJECT."""
    job = _call(url, apikey, lambda c: c.start(project, {"worker": worker} if worker else {}))
    if job is None:
        click.echo("no pending job", err=True)
        sys.exit(1)
    _job_rows([job], as_json)


def _move_command(state: str, help_text: str) -> click.Command:
    @http_command
    @click.argument("keys", nargs=-1, required=True)
    def command(url: str, apikey: str, as_json: bool, keys: tuple[str, ...]) -> None:
        rows: list[dict[str, Any]] = []
        for key in keys:
            project = _project_of(key)
            update = [{"key": key, "state": state}]
            rows += _call(url, apikey, functools.partial(_update, project=project, update=update))
        _print_rows(rows, ["key", "prevstate"], as_json)

    command.__doc__ = help_text
    return click.command(state_command_name(state))(command)


def _update(client: Client, project: int, update: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return client.update(project, update)


def _cancel(client: Client, project: int, keys: list[str]) -> int:
    return client.cancel(project, keys)


def state_command_name(state: str) -> str:
    return {"finished": "finish", "deleted": "delete"}[state]


main.add_command(_move_command("finished", "Mark jobs (KEYS like 53/7/81) finished."))
main.add_command(_move_command("deleted", "Mark jobs (KEYS like 53/7/81) deleted."))


@main.command()
@http_command
@click.argument("keys", nargs=-1, required=True)
def cancel(url: str, apikey: str, as_json: bool, keys: tuple[str, ...]) -> None:
    """Cancel jobs (KEYS like 53/7/81): pending ones finish, running ones are asked to stop."""
    total = 0
    by_project: dict[int, list[str]] = {}
    for key in keys:
        by_project.setdefault(_project_of(key), []).append(key)
    for project, project_keys in by_project.items():
        total += _call(url, apikey, functools.partial(_cancel, project=project, keys=project_keys))
    click.echo(orjson.dumps({"count": total}).decode() if as_json else f"cancelled {total}")


# what a job produced: `jobq items`, `jobq logs`, `jobq requests` (jobq/cli_data.py)
cli_data.register(main)
# periodic jobs (issue 13): `jobq schedule ...`
from jobq.cli_schedule import schedule as _schedule  # noqa: E402

main.add_command(_schedule)


# -- the job-running side (issue 12): jobq/worker/ ---------------------------------------

def _add_worker() -> None:
    from jobq.worker.cli import run, worker

    main.add_command(worker)
    main.add_command(run)


_add_worker()
