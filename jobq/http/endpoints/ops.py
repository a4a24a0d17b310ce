"""Operations endpoints: /metrics for Prometheus (no credentials, like /healthz)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from jobq import metrics
from jobq.domain.jobs import LISTABLE
from jobq.http.endpoints._common import queue

#: most projects whose queue depths one scrape reports
MAX_PROJECTS = 1000


async def metrics_endpoint(request: Request) -> Response:
    storage = queue(request).storage
    for project in (await storage.projects())[:MAX_PROJECTS]:
        counts = await storage.state_counts(project)
        for state in LISTABLE:
            metrics.QUEUE_DEPTH.labels(str(project), state.label).set(counts.get(state, 0))
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
