"""`jobq worker`: run the jobs of one or more projects from this Scrapy project's
directory. Every option also reads a `JOBQ_*` variable, named in `--help`."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import click

from jobq.worker.runner import Options, Worker


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
@click.option("--log-level", envvar="JOBQ_LOG_LEVEL", show_envvar=True, default="info",
              show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def worker(url: str, apikey: str, projects: tuple[int, ...], botgroup: str | None, slots: int,
           name: str, python: str, project_dir: Path, workdir: Path, memory_per_unit: int,
           kill_timeout: float, drain_timeout: float, buffer_mb: int, log_level: str) -> None:
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
        buffer_bytes=buffer_mb * 1024 * 1024,
    )
    sys.exit(Worker(options).run())
