"""Scrapyd 1.6 as the reference: own venv, a minimal deployed Scrapy project.

Everything lives under the work dir (bench/.work, gitignored): the venv is
made once and reused; the project, its egg and Scrapyd's queues are made
anew each run. `poll_interval` is a year, so scheduled jobs stay pending and
Scrapyd never spawns a crawl while it is measured.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from bench.servers import HOST, Server, free_port

SCRAPYD = "scrapyd==1.6.0"
PROJECT = "benchproj"
SPIDER = "s1"

FILES = {
    "scrapy.cfg": f"[settings]\ndefault = {PROJECT}.settings\n",
    "setup.py": f"""\
        from setuptools import find_packages, setup

        setup(
            name="{PROJECT}",
            version="1.0",
            packages=find_packages(),
            entry_points={{"scrapy": ["settings = {PROJECT}.settings"]}},
        )
        """,
    f"{PROJECT}/__init__.py": "",
    f"{PROJECT}/settings.py": f'BOT_NAME = "{PROJECT}"\nSPIDER_MODULES = ["{PROJECT}.spiders"]\n',
    f"{PROJECT}/spiders/__init__.py": "",
    f"{PROJECT}/spiders/s1.py": f"""\
        import scrapy


        class S1(scrapy.Spider):
            name = "{SPIDER}"
            start_urls: list[str] = []
        """,
}


def ensure_venv(work: Path) -> Path:
    """Scrapyd's own venv (made once); returns its python."""
    venv = work / "scrapyd-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".bench-ok"
    if not stamp.exists():
        print(f"# creating Scrapyd's venv in {venv} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, SCRAPYD, "scrapy", "setuptools"], check=True)
        stamp.write_text(SCRAPYD + "\n")
    return python


def version(python: Path) -> str:
    code = "import scrapyd, scrapy; print(scrapyd.__version__, scrapy.__version__)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    scrapyd_v, scrapy_v = out.stdout.split()
    return f"Scrapyd {scrapyd_v} (Scrapy {scrapy_v})"


def build_egg(python: Path, where: Path) -> Path:
    """Write the minimal project and build its egg with setuptools' bdist_egg."""
    for name, text in FILES.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    subprocess.run(
        [str(python), "setup.py", "-q", "bdist_egg", "-d", "dist"],
        cwd=where,
        check=True,
        capture_output=True,
    )
    return next((where / "dist").glob("*.egg"))


def start(python: Path, run_dir: Path) -> Server:
    """Start Scrapyd on a free port with fresh queues, and deploy the project."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (run_dir / "scrapyd.conf").write_text(
        textwrap.dedent(f"""\
            [scrapyd]
            bind_address = {HOST}
            http_port = {port}
            poll_interval = 31536000
            eggs_dir = {run_dir / "eggs"}
            logs_dir = {run_dir / "logs"}
            dbs_dir = {run_dir / "dbs"}
            items_dir =
            jobstorage = scrapyd.jobstorage.MemoryJobStorage
            """)
    )
    scrapyd = python.parent / "scrapyd"
    argv = [str(scrapyd), "--pidfile=", "--logfile", str(run_dir / "twistd.log")]
    server = Server("scrapyd", argv, port, run_dir / "scrapyd.out", cwd=run_dir)
    server.start("/daemonstatus.json")
    egg = build_egg(python, run_dir / "project")
    with open(egg, "rb") as f:
        r = httpx.post(
            server.url + "/addversion.json",
            data={"project": PROJECT, "version": "1"},
            files={"egg": (egg.name, f, "application/octet-stream")},
            timeout=120,
        )
    if r.json().get("status") != "ok":
        raise RuntimeError(f"Scrapyd deploy failed: {r.text}")
    # the first schedule.json runs `scrapy list` once and caches it: do it now
    r = httpx.post(
        server.url + "/schedule.json", data={"project": PROJECT, "spider": SPIDER}, timeout=120
    )
    if r.json().get("status") != "ok":
        raise RuntimeError(f"Scrapyd schedule failed: {r.text}")
    httpx.post(server.url + "/cancel.json", data={"project": PROJECT, "job": r.json()["jobid"]})
    return server


SEED = """\
import sys, uuid
from scrapyd.config import Config
from scrapyd.utils import get_spider_queues

project, spider, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = get_spider_queues(Config())[project].q
ids = [uuid.uuid1().hex for _ in range(n)]
# what schedule.json stores for project=P&spider=S, in one transaction
msg = {"project": project, "spider": spider, "settings": {}, "name": spider}
rows = [(0.0, q.encode({**msg, "_job": i})) for i in ids]
q.conn.executemany(f"INSERT INTO {q.table} (priority, message) VALUES (?, ?)", rows)
q.conn.commit()
print("\\n".join(ids))
"""


def seed_pending(python: Path, run_dir: Path, n: int) -> list[str]:
    """Add N pending jobs through Scrapyd's own queue class, in one transaction.

    schedule.json commits once per job (~50 jobs/s here), so seeding 10,000
    through it would take minutes; the queue Scrapyd reads is the same.
    """
    out = subprocess.run(
        [str(python), "-c", SEED, PROJECT, SPIDER, str(n)],
        cwd=run_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()
