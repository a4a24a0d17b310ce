"""The stack's ceiling: a bare Starlette app on the server software jobq uses.

Served like `jobq serve` (granian embedded on uvloop by default, or uvicorn with
httptools; one process, no access log), it does the least a JobQ endpoint could:
GET answers a few JSON lines, POST reads a small body and answers one line.
jobq's figures are printed as a ratio to these. Run: python -m bench.baseline_app --port 8001
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobq.http import serving

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
    parser.add_argument("--http-server", choices=serving.SERVERS, default=serving.SERVERS[0],
                        help="the server software (default: jobq serve's)")
    args = parser.parse_args()
    serving.run(app, args.host, args.port, "warning", args.http_server)


if __name__ == "__main__":
    main()
