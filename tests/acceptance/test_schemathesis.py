"""schemathesis against a live `jobq serve`: generated requests for every operation of
/openapi.json (valid and invalid ones), and no answer may be a 5xx, an undocumented status
code or content type, or a body that breaks its schema.

The run is the `st` CLI in a subprocess, bounded in time (`--max-time` and a hard timeout).
This module is also its hooks module (SCHEMATHESIS_HOOKS): importing it teaches schemathesis
JSON lines, to send request bodies and to read responses as the array of their lines.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import schemathesis

from tests import helpers

ROOT = Path(__file__).resolve().parents[2]
JSONLINES = "application/x-jsonlines"

#: the budget of the whole run (seconds), and how much longer before the subprocess is killed
MAX_TIME = int(os.environ.get("JOBQ_SCHEMATHESIS_MAX_TIME", "75"))
MAX_EXAMPLES = int(os.environ.get("JOBQ_SCHEMATHESIS_MAX_EXAMPLES", "30"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])


@schemathesis.serializer(JSONLINES)
def _to_json_lines(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """An array is one line per item; anything else (negative cases) is one line.
    (`json`, not orjson: generated integers may exceed 64 bits.)"""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@schemathesis.deserializer(JSONLINES)
def _from_json_lines(ctx: schemathesis.DeserializationContext, response: Any) -> list[Any]:
    """The array of a JSON-lines body's lines; a bad line fails the run."""
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def _seed() -> int:
    """JOBQ_SCHEMATHESIS_SEED, else a new one each run (printed, so a failure can be
    replayed): a fixed seed walks the same few cases forever."""
    given = os.environ.get("JOBQ_SCHEMATHESIS_SEED")
    return int(given) if given else random.randrange(2**32)
#: longest `startjob?wait=` a generated case may ask (seconds): long polls on empty queues
#: would spend the run's time budget waiting
LONGEST_WAIT = 1


@schemathesis.hook
def map_case(ctx: schemathesis.HookContext, case: Any) -> Any:
    wait = case.query.get("wait") if isinstance(case.query, dict) else None
    if isinstance(wait, int) and LONGEST_WAIT < wait <= 60:
        case.query["wait"] = LONGEST_WAIT
    return case


def test_schemathesis_finds_nothing(server: helpers.Server, tmp_path: Path) -> None:
    seed = _seed()
    replay = f"schemathesis seed {seed} (replay: JOBQ_SCHEMATHESIS_SEED={seed})"
    print(replay)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT)}
    command = [
        str(Path(sys.executable).parent / "st"), "--no-color", "run", f"{server.url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME),
        "--auth", f"{server.admin_key}:",
        # one worker: hypothesis describes lambdas through `ast`, which is not thread-safe
        "--workers", "1",
        "--seed", str(seed),
        "--request-timeout", "30",
        "--report", "junit",
        "--report-dir", str(tmp_path / "report"),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=MAX_TIME + 90)
    output = done.stdout + done.stderr
    print(output)  # the summary, also when it passes (pytest -s, or the report on failure)
    assert done.returncode == 0, f"{replay}\n{output[-20000:]}"


# -- explicit examples: cases of issue 8, checked against the schema like generated ones ---


def _basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _validated(schema: Any, base_url: str, path: str, method: str, expected: int,
               **case: Any) -> None:
    """One request through schemathesis' own checks (documented status, content type and
    schema), and exactly the status the rule says."""
    if "body" in case:
        case["media_type"] = JSONLINES
    response = schema[path][method].Case(**case).call_and_validate(base_url=base_url)
    assert response.status_code == expected, (method, path, case, response.text)


def test_explicit_examples_answer_as_documented(db_url: str, tmp_path: Path) -> None:
    server = helpers.Server(db=db_url, log=tmp_path / "server.log",
                            extra_args=["--metrics-key", "scrape-key"]).start()
    try:
        admin = _basic(server.admin_key)
        with server.client() as client:
            client.post("/jobq/53/push", content=b'{"spider":"s1"}\n{"spider":"s1"}')
            live = client.post("/jobq/53/startjob").json()
            gone = client.post("/jobq/53/startjob").json()
            client.post("/jobq/53/update",
                        content=orjson.dumps({"key": gone["key"], "state": "deleted"}))
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        base = server.url
        job = "/jobs/{pid}/{sid}/{jobno}"

        def ids(key: str) -> dict[str, int]:
            return dict(zip(("pid", "sid", "jobno"), map(int, key.split("/")), strict=True))

        # a job token reaches its live job, and not a deleted one (item 14)
        _validated(schema, base, job, "GET", 200, path_parameters=ids(live["key"]),
                   headers=_basic(live["key"], live["auth"]))
        _validated(schema, base, job, "GET", 401, path_parameters=ids(gone["key"]),
                   headers=_basic(gone["key"], gone["auth"]))
        _validated(schema, base, job, "POST", 401, path_parameters=ids(gone["key"]),
                   headers=_basic(gone["key"], gone["auth"]), body=[{"x": 1}])
        # /metrics needs the metrics key when the server has one (item 11)
        _validated(schema, base, "/metrics", "GET", 401)
        _validated(schema, base, "/metrics", "GET", 200,
                   headers={"Authorization": "Bearer scrape-key"})
        # cancelling answers its count (item 12)
        _validated(schema, base, "/jobq/{pid}/cancel", "POST", 200, path_parameters={"pid": 53},
                   headers=admin, body=[{"key": live["key"]}])
        # a count over the cap is a clear 400
        _validated(schema, base, "/jobq/{pid}/list", "GET", 400, path_parameters={"pid": 53},
                   headers=admin, query={"count": 10**30})
    finally:
        server.stop()
