"""Every Prometheus metric of jobq, in one module, served at /metrics.

What every request records (requests by route, method and status, their time, the time
of each storage operation, the jobs pushed, claimed and finished) is counted in plain
numbers on the event loop's thread, with no lock and no label lookup, and turned into
metric families only when /metrics is scraped (`_Recorded`, a custom collector:
prometheus-client's documented way for values kept elsewhere). The scrape runs on the
same thread, so it reads whole figures. The rare ones (429s, workers, lease outcomes)
stay prometheus-client metrics."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from jobq.domain.jobs import LISTABLE, State

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)


class Tally:
    """A counter: `value` is added to in place (`tally.value += n`)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class Timing:
    """A histogram: `observe` finds the bucket by bisection and adds to two numbers. A
    value on a bound goes into that bound's bucket (`le`), as prometheus-client does."""

    __slots__ = ("_bounds", "_les", "counts", "created", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: each bucket's `le` label, as prometheus-client writes it ("0.5", "1.0", "+Inf")
        self._les = [floatToGoString(b) for b in (*bounds, float("inf"))]  # type: ignore[no-untyped-call]
        #: per bucket, not cumulative; the last one is +Inf
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self._bounds, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as exposed: (le, count), +Inf last."""
        out = []
        running = 0
        for le, count in zip(self._les, self.counts, strict=True):
            running += count
            out.append((le, float(running)))
        return out


class RequestMetrics:
    """The requests of one route and method: how many by status, and their time."""

    __slots__ = ("by_status", "created", "seconds")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        #: when each status was first counted (a counter's `_created`)
        self.created: dict[int, float] = {}
        self.seconds = Timing(HTTP_BUCKETS)

    def record(self, status: int, seconds: float) -> None:
        by_status = self.by_status
        if status in by_status:
            by_status[status] += 1
        else:
            by_status[status] = 1
            self.created[status] = time.time()
        self.seconds.observe(seconds)


class OperationMetrics:
    """One storage operation: its time, and how many failed."""

    __slots__ = ("errors", "seconds")

    def __init__(self) -> None:
        self.seconds = Timing(DB_BUCKETS)
        self.errors = Tally()


_ROUTES: dict[tuple[str, str], RequestMetrics] = {}
_OPERATIONS: dict[str, OperationMetrics] = {}

JOBS_PUSHED = Tally()
JOBS_CLAIMED = Tally()
JOBS_FINISHED = Tally()


def route_metrics(route: str, method: str) -> RequestMetrics:
    """The one recorder of a route (its path as declared, or "unmatched") and method."""
    found = _ROUTES.get((route, method))
    if found is None:
        found = _ROUTES[route, method] = RequestMetrics()
    return found


def operation_metrics(operation: str) -> OperationMetrics:
    """The one recorder of a storage operation (the `Storage` method's name)."""
    found = _OPERATIONS.get(operation)
    if found is None:
        found = _OPERATIONS[operation] = OperationMetrics()
    return found


def _histogram(name: str, documentation: str, labels: list[str],
               children: Iterable[tuple[list[str], Timing]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, timing in children:
        family.add_metric(values, timing.buckets(), timing.total)
        family.samples.append(
            Sample(name + "_created", dict(zip(labels, values, strict=True)), timing.created))
    return family


def _counter(name: str, documentation: str, tally: Tally) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=tally.value, created=tally.created)


class _Recorded(Collector):
    """The figures counted in plain numbers, as metric families (at scrape time)."""

    def collect(self) -> Iterable[Metric]:
        routes = sorted(_ROUTES.items())
        requests = CounterMetricFamily("jobq_http_requests", "HTTP requests answered",
                                       labels=["route", "method", "status"])
        for (route, method), recorded in routes:
            for status, count in sorted(recorded.by_status.items()):
                requests.add_metric([route, method, str(status)], count,
                                    created=recorded.created[status])
        yield requests
        yield _histogram("jobq_http_request_seconds", "Time to answer an HTTP request",
                         ["route", "method"],
                         (([route, method], r.seconds) for (route, method), r in routes))
        yield _counter("jobq_jobs_pushed", "Jobs created by push", JOBS_PUSHED)
        yield _counter("jobq_jobs_claimed", "Jobs claimed by startjob", JOBS_CLAIMED)
        yield _counter("jobq_jobs_finished", "Jobs moved to finished by update or cancel",
                       JOBS_FINISHED)
        operations = sorted(_OPERATIONS.items())
        yield _histogram("jobq_db_seconds", "Time of a storage operation", ["operation"],
                         (([op], m.seconds) for op, m in operations))
        failures = CounterMetricFamily("jobq_db_errors", "Storage operations that failed",
                                       labels=["operation"])
        for op, m in operations:
            failures.add_metric([op], m.errors.value, created=m.errors.created)
        yield failures


REGISTRY.register(_Recorded())
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
