"""Operations endpoints: /metrics for Prometheus (open like /healthz, unless the server
was given --metrics-key)."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST

from jobq import errors, metrics
from jobq.http import auth
from jobq.http.call import Call, Reply

#: most projects whose queue depths one scrape reports: bounds the label set
MAX_PROJECTS = 1000


def _check_metrics_key(call: Call, expected: str) -> None:
    scheme, _, token = call.header(b"authorization").partition(" ")
    if scheme.lower() == "bearer":
        given = token.strip()
    else:
        given = auth.credentials(call.header(b"authorization"), call.query)[0] or ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise errors.Unauthorized("/metrics needs the metrics key")


async def metrics_endpoint(call: Call) -> Reply:
    expected = call.services.settings.metrics_key
    if expected:
        _check_metrics_key(call, expected)
    depths = await call.queue.storage.queue_depths(MAX_PROJECTS)  # one query
    return Reply(metrics.exposition(depths), 200, CONTENT_TYPE_LATEST)
