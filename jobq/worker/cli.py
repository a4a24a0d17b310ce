"""`jobq worker`: run the jobs of one or more projects from this Scrapy project's
directory. Every option also reads a `JOBQ_*` variable, named in `--help`."""

from __future__ import annotations

import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from jobq.worker.api import Api, ApiError, Unavailable
from jobq.worker.runner import Options, Worker

#: seconds between two looks at a job `jobq run --wait` follows
POLL = 1.0


@click.command("worker")
@click.option("--url", envvar="JOBQ_URL", show_envvar=True, default="http://127.0.0.1:2424",
              show_default=True, help="Server URL.")
@click.option("--apikey", envvar="JOBQ_APIKEY", show_envvar=True, required=True,
              help="API key (an admin key, or the key of the one project served).")
@click.option("--project", "projects", envvar="JOBQ_PROJECT", show_envvar=True, multiple=True,
              required=True, type=click.IntRange(1),
              help="A project whose jobs to run (repeatable; the variable: space-separated).")
@click.option("--botgroup", envvar="JOBQ_BOTGROUP", show_envvar=True, default=None,
              help="Claim only jobs of this botgroup.")
@click.option("--slots", envvar="JOBQ_SLOTS", show_envvar=True, default=1, show_default=True,
              type=click.IntRange(1), help="Units run at once (a job of units: 2 takes two).")
@click.option("--name", envvar="JOBQ_NAME", show_envvar=True, default=socket.gethostname(),
              show_default="the host name", help="The worker's name (jobs' started_by).")
@click.option("--python", envvar="JOBQ_PYTHON", show_envvar=True, default=sys.executable,
              show_default="this worker's", help="Interpreter of the project's environment.")
@click.option("--project-dir", envvar="JOBQ_PROJECT_DIR", show_envvar=True, default=".",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The Scrapy project (its scrapy.cfg).")
@click.option("--workdir", envvar="JOBQ_WORKDIR", show_envvar=True, default=".jobq-worker",
              show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where jobs get their directories, pipes and buffers.")
@click.option("--memory-per-unit", envvar="JOBQ_MEMORY_PER_UNIT", show_envvar=True,
              default=950, show_default=True, type=click.IntRange(1),
              help="MB of memory a unit allows (SHUB_JOB_MEMORY_LIMIT = units x this).")
@click.option("--kill-timeout", envvar="JOBQ_KILL_TIMEOUT", show_envvar=True, default=60.0,
              show_default=True, type=click.FloatRange(0),
              help="Seconds from a stop's SIGTERM to SIGKILL.")
@click.option("--drain-timeout", envvar="JOBQ_DRAIN_TIMEOUT", show_envvar=True, default=300.0,
              show_default=True, type=click.FloatRange(0),
              help="Seconds running jobs may finish after SIGTERM before they are stopped.")
@click.option("--buffer-mb", envvar="JOBQ_BUFFER_MB", show_envvar=True, default=256,
              show_default=True, type=click.IntRange(1),
              help="MB of job output held on disk while the server is out of reach;"
                   " jobs pause when it is full.")
@click.option("--warm/--no-warm", envvar="JOBQ_WARM", show_envvar=True, default=True,
              show_default=True,
              help="Keep an interpreter with Scrapy imported ready for the next job.")
@click.option("--log-level", envvar="JOBQ_LOG_LEVEL", show_envvar=True, default="info",
              show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def worker(url: str, apikey: str, projects: tuple[int, ...], botgroup: str | None, slots: int,
           name: str, python: str, project_dir: Path, workdir: Path, memory_per_unit: int,
           kill_timeout: float, drain_timeout: float, buffer_mb: int, warm: bool,
           log_level: str) -> None:
    """Run jobs of PROJECTs as Scrapy Cloud does (start-crawl, from the Scrapy project's
    directory). SIGTERM: no more claims, running jobs get --drain-timeout; a second one
    stops at once."""
    if not (project_dir / "scrapy.cfg").is_file():
        raise click.BadParameter(f"no scrapy.cfg in {project_dir}", param_hint="--project-dir")
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):  # one line a request: too much even for debug
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = Options(
        url=url, apikey=apikey, projects=tuple(dict.fromkeys(projects)),
        project_dir=project_dir.resolve(), workdir=workdir.resolve(), python=python,
        name=name, botgroup=botgroup, slots=slots, memory_per_unit=memory_per_unit,
        kill_timeout=kill_timeout, drain_timeout=drain_timeout,
        buffer_bytes=buffer_mb * 1024 * 1024, warm=warm,
    )
    sys.exit(Worker(options).run())


@click.command("run")
@click.option("--url", envvar="JOBQ_URL", show_envvar=True, default="http://127.0.0.1:2424",
              show_default=True, help="Server URL.")
@click.option("--apikey", envvar="JOBQ_APIKEY", show_envvar=True, required=True,
              help="API key.")
@click.argument("project", type=click.IntRange(1))
@click.argument("spider")
@click.option("-a", "--arg", "spider_args", multiple=True,
              help="A spider argument NAME=VALUE (repeatable), as `scrapy crawl -a`.")
@click.option("-s", "--set", "job_settings", multiple=True,
              help="A Scrapy setting NAME=VALUE for this job (repeatable), as `scrapy crawl -s`.")
@click.option("--units", type=click.IntRange(1), default=None, help="Units the job takes.")
@click.option("--priority", type=click.IntRange(0, 4), default=None)
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--wait", is_flag=True,
              help="Wait for the outcome, with a line of progress; exit 0 only for finished.")
def run(url: str, apikey: str, project: int, spider: str, spider_args: tuple[str, ...],
        job_settings: tuple[str, ...], units: int | None, priority: int | None,
        tags: tuple[str, ...], wait: bool) -> None:
    """Push a job of SPIDER into PROJECT (as `jobq push`) and, with --wait, follow it."""
    from jobq.cli import new_job  # the one way to build a job to push

    api = Api(url, apikey)
    try:
        key = api.push(project, new_job(spider, priority, tags, spider_args, job_settings,
                                        units))
        click.echo(key)
        if wait:
            reason = follow(api, key)
            sys.exit(0 if reason == "finished" else 1)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        api.close()


def follow(api: Api, key: str) -> str:
    """Wait for the job's outcome, showing items, pages, errors and the time elapsed."""
    started = time.monotonic()
    tty = sys.stderr.isatty()
    line = ""
    while True:
        try:
            meta = api.job_meta(key)
            line = progress_line(api, key, meta, time.monotonic() - started)
        except Unavailable as exc:
            line = f"{key}: server unavailable ({exc})"
            meta = {}
        if tty:
            click.echo(f"\r\033[K{line}", nl=False, err=True)
        if meta.get("state") in ("finished", "deleted"):
            reason = str(meta.get("close_reason") or "")
            click.echo(("\n" if tty else line + "\n") + f"{key}: {reason}", nl=True, err=True)
            return reason
        time.sleep(POLL)


def progress_line(api: Api, key: str, meta: dict[str, Any], elapsed: float) -> str:
    stats = meta.get("scrapystats") or {}
    items = api.data_count("items", key)
    pages = api.data_count("requests", key)
    errors = stats.get("log_count/ERROR", 0)
    return (f"{key} {meta.get('state', '?')}: {items} items, {pages} pages, {errors} errors,"
            f" {elapsed:.0f}s")
