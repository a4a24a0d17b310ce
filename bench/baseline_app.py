"""The stack's ceiling: a bare Starlette app on the server software jobq uses.

Served like `jobq serve` (uvicorn, one worker, uvloop + httptools, no access
log), it does the least a JobQ endpoint could: GET answers a few JSON lines,
POST reads a small body and answers one line. jobq's figures are printed as a
ratio to these. Run: python -m bench.baseline_app --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSONL = "application/x-jsonlines"
LINES = b"".join(b'{"key":"1/1/%d","ts":1700000000000}\n' % n for n in range(10, 0, -1))


async def lines(request: Request) -> Response:
    return Response(LINES, media_type=JSONL)


async def push(request: Request) -> Response:
    body = await request.body()
    return Response(b'{"key":"1/1/%d","auth":null}\n' % len(body), media_type=JSONL)


app = Starlette(routes=[Route("/lines", lines), Route("/push", push, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
