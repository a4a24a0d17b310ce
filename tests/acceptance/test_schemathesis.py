"""schemathesis against a live `jobq serve`: generated requests for every operation of
/openapi.json (valid and invalid ones), and no answer may be a 5xx, an undocumented status
code or content type, or a body that breaks its schema.

The run is the `st` CLI in a subprocess, bounded in time (`--max-time` and a hard timeout).
This module is also its hooks module (SCHEMATHESIS_HOOKS): importing it teaches schemathesis
JSON lines, to send request bodies and to read responses as the array of their lines.
"""

from __future__ import annotations

import json
import os
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
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT)}
    command = [
        str(Path(sys.executable).parent / "st"), "--no-color", "run", f"{server.url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME),
        "--auth", f"{server.admin_key}:",
        # one worker: hypothesis describes lambdas through `ast`, which is not thread-safe
        "--workers", "1",
        "--seed", os.environ.get("JOBQ_SCHEMATHESIS_SEED", "20240501"),
        "--request-timeout", "30",
        "--report", "junit",
        "--report-dir", str(tmp_path / "report"),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=MAX_TIME + 90)
    output = done.stdout + done.stderr
    print(output)  # the summary, also when it passes (pytest -s, or the report on failure)
    assert done.returncode == 0, output[-20000:]
