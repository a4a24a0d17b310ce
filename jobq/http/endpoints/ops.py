"""Operations endpoints: /metrics for Prometheus (open like /healthz, unless the server
was given --metrics-key)."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from jobq import errors, metrics
from jobq.http import auth
from jobq.http.endpoints._common import queue, settings

#: most projects whose queue depths one scrape reports: bounds the label set
MAX_PROJECTS = 1000


def _check_metrics_key(request: Request, expected: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else auth.credentials(request)[0]
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise errors.Unauthorized("/metrics needs the metrics key")


async def metrics_endpoint(request: Request) -> Response:
    expected = settings(request).metrics_key
    if expected:
        _check_metrics_key(request, expected)
    depths = await queue(request).storage.queue_depths(MAX_PROJECTS)  # one query
    return Response(metrics.exposition(depths), media_type=CONTENT_TYPE_LATEST)
