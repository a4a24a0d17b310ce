"""The spiders of the worker's Scrapy project (`scrapy list` in the project's environment),
made known to the server so that it and its users know what a project can run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from jobq.worker.process import settings_module

#: seconds `scrapy list` may take
LIST_TIMEOUT = 120.0


class SpiderListError(Exception):
    pass


def list_spiders(python: str, project_dir: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHUB_", "JOBQ_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(project_dir), env.get("PYTHONPATH")) if p)
    module = settings_module(project_dir)
    if module:
        env["SCRAPY_SETTINGS_MODULE"] = module
    try:
        done = subprocess.run([python, "-m", "scrapy", "list"], cwd=project_dir, env=env,
                              capture_output=True, text=True, timeout=LIST_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpiderListError(f"scrapy list: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise SpiderListError(f"scrapy list exited with {done.returncode}: {' | '.join(tail)}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]
