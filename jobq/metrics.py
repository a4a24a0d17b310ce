"""Every Prometheus metric of jobq, in one module, served at /metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobq.domain.jobs import LISTABLE, State

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "jobq_http_requests", "HTTP requests answered", ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "jobq_http_request_seconds", "Time to answer an HTTP request", ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOBS_PUSHED = Counter("jobq_jobs_pushed", "Jobs created by push", registry=REGISTRY)
JOBS_CLAIMED = Counter("jobq_jobs_claimed", "Jobs claimed by startjob", registry=REGISTRY)
JOBS_FINISHED = Counter(
    "jobq_jobs_finished", "Jobs moved to finished by update or cancel", registry=REGISTRY
)
DB_SECONDS = Histogram(
    "jobq_db_seconds", "Time of a storage operation", ["operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
    registry=REGISTRY,
)
DB_ERRORS = Counter(
    "jobq_db_errors", "Storage operations that failed", ["operation"], registry=REGISTRY
)
RATE_LIMITED = Counter("jobq_rate_limited", "Requests refused with 429", registry=REGISTRY)
# -- workers and leases (issue 10) --
WORKERS = Gauge(
    "jobq_workers", "Registered workers by state (active, lost), as the reaper last counted",
    ["state"], registry=REGISTRY,
)
LEASE_OUTCOMES = Counter(
    "jobq_lease_outcomes", "Jobs this process's reaper finished or requeued, by outcome",
    ["outcome"], registry=REGISTRY,
)


class _QueueDepths(Collector):
    """`jobq_queue_jobs`, built from one scrape's reading: a project that went away is
    simply not in the next one (a labelled Gauge would keep its children forever)."""

    def __init__(self, depths: Mapping[int, Mapping[State, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "jobq_queue_jobs", "Jobs in each queue (read at scrape time)",
            labels=["project", "state"],
        )
        for project, counts in sorted(self._depths.items()):
            for state in LISTABLE:
                gauge.add_metric([str(project), state.label], counts.get(state, 0))
        yield gauge


def exposition(depths: Mapping[int, Mapping[State, int]]) -> bytes:
    """The text of /metrics: every metric of this process, then the queue depths."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_QueueDepths(depths))
    return generate_latest(REGISTRY) + generate_latest(scrape)
