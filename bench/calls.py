"""Python calls per request on the event loop, counted with cProfile in process.

The app is driven straight through ASGI (no HTTP client or server in the count), on a
fresh SQLite file, with the loop jobq serves on (uvloop). Only the event loop's thread is
profiled: the SQLite writer thread's work is not counted.
Run: python -m bench.calls [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import pstats
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

from jobq.config import Settings
from jobq.http.app import create_app
from jobq.storage import open_storage

ADMIN = "bench-admin-key"
AUTH = b"Basic " + base64.b64encode(ADMIN.encode() + b":")
P = 1


def _scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query, "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 2424),
        "headers": [(b"host", b"x"), (b"authorization", AUTH),
                    (b"content-type", b"application/x-jsonlines")],
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # a disconnect never comes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _lifespan(app: Any) -> Callable[[], Any]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        await replies.put(message)

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, receive, send))
    started = await replies.get()
    assert started["type"] == "lifespan.startup.complete", started

    async def stop() -> None:
        await queue.put({"type": "lifespan.shutdown"})
        await task

    return stop


async def _measure(requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=f"sqlite:///{Path(tmp) / 'b.sqlite3'}", admin_keys=(ADMIN,))
        app = create_app(settings, open_storage(settings.db))
        stop = await _lifespan(app)
        push = _scope("POST", f"/jobq/{P}/push")
        start = _scope("POST", f"/jobq/{P}/startjob")
        update = _scope("POST", f"/jobq/{P}/update")
        listing = _scope("GET", f"/jobq/{P}/list", b"state=finished&count=10")
        line = orjson.dumps({"spider": "s"})
        # warm up: caches, prepared statements, the first lookup of the key
        for _ in range(50):
            await _call(app, push, line)
        figures = {}
        keys: list[str] = []

        async def one(name: str) -> None:
            if name == "push":
                status, _ = await _call(app, push, line)
            elif name == "startjob":
                status, body = await _call(app, start)
                keys.append(orjson.loads(body)["key"])
            elif name == "update":
                done = orjson.dumps({"key": keys.pop(), "state": "finished"})
                status, _ = await _call(app, update, done)
            else:
                status, _ = await _call(app, listing)
            assert status == 200, (name, status)

        for name in ("push", "startjob", "update", "list"):
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(requests):
                await one(name)
            profile.disable()
            figures[name] = pstats.Stats(profile).total_calls / requests  # type: ignore[attr-defined]
        await stop()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    figures = uvloop.run(_measure(args.requests))
    for name, calls in figures.items():
        print(f"{name:10s} {calls:7.1f} calls/request")


if __name__ == "__main__":
    main()
