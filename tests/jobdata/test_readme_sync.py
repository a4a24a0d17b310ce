"""The README's "Download what finished since last time" program, run as written (taken
from README.md) against a live server: the first sync downloads every finished job's
items, logs and requests; the second only the jobs finished since."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests import helpers
from tests.jobdata.conftest import finish, running_job

README = Path(__file__).parents[2] / "README.md"


def readme_program() -> dict[str, Any]:
    text = README.read_text()
    section = text[text.index("### Download what finished since last time"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    return namespace


def crawl(http: httpx.Client, project: int, n: int) -> str:
    key, _ = running_job(http, project)
    for kind, records in (("items", [{"n": i} for i in range(n)]),
                          ("logs", [{"message": f"m{n}", "level": 20, "time": 1}]),
                          ("requests", [{"url": f"u{n}"}])):
        body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))
        assert http.post(f"/{kind}/{key}", content=body,
                         headers={"content-encoding": "gzip"}).status_code == 200
    finish(http, project, key)
    return key


def read(folder: Path, key: str, kind: str) -> list[dict[str, Any]]:
    path = folder / f"{key.replace('/', '-')}.{kind}.jl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_readme_sync_program(data_server: helpers.Server, http: httpx.Client,
                                 project: int, tmp_path: Path) -> None:
    sync = readme_program()["sync"]
    first = [crawl(http, project, n) for n in (3, 1500)]
    assert sync(data_server.admin_key, data_server.url, project, tmp_path) == 2
    assert read(tmp_path, first[1], "items") == [{"n": i} for i in range(1500)]
    assert [r["message"] for r in read(tmp_path, first[0], "logs")] == ["m3"]
    assert read(tmp_path, first[0], "requests") == [{"url": "u3"}]
    assert (tmp_path / "LAST_KEY").read_text() == first[1]
    later = crawl(http, project, 7)
    (tmp_path / f"{first[0].replace('/', '-')}.items.jl").unlink()
    assert sync(data_server.admin_key, data_server.url, project, tmp_path) == 1
    assert read(tmp_path, later, "items") == [{"n": i} for i in range(7)]
    assert not (tmp_path / f"{first[0].replace('/', '-')}.items.jl").exists()
    assert sync(data_server.admin_key, data_server.url, project, tmp_path) == 0
