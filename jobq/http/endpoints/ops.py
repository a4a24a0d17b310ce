"""Operations endpoints: /metrics for Prometheus (no credentials, like /healthz)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobq import metrics
from jobq.domain.jobs import LISTABLE
from jobq.http.call import Call, Reply

#: most projects whose queue depths one scrape reports
MAX_PROJECTS = 1000


async def metrics_endpoint(call: Call) -> Reply:
    storage = call.queue.storage
    for project in (await storage.projects())[:MAX_PROJECTS]:
        counts = await storage.state_counts(project)
        for state in LISTABLE:
            metrics.QUEUE_DEPTH.labels(str(project), state.label).set(counts.get(state, 0))
    return Reply(generate_latest(metrics.REGISTRY), 200, CONTENT_TYPE_LATEST)
