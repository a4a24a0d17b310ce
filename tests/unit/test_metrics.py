"""The /metrics text, built at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from jobq import metrics
from jobq.domain.jobs import State


def test_a_project_that_went_away_leaves_the_queue_depths() -> None:
    first = metrics.exposition({5: {State.PENDING: 2}, 7: {State.RUNNING: 1}}).decode()
    assert 'jobq_queue_jobs{project="5",state="pending"} 2.0' in first
    assert 'jobq_queue_jobs{project="5",state="finished"} 0.0' in first
    assert 'jobq_queue_jobs{project="7",state="running"} 1.0' in first
    second = metrics.exposition({7: {State.RUNNING: 1}}).decode()
    assert 'project="5"' not in second
    assert 'jobq_queue_jobs{project="7",state="running"} 1.0' in second
    assert second.count("# TYPE jobq_queue_jobs gauge") == 1
    assert "jobq_jobs_pushed_total" in second  # the process's own metrics too


def _samples(text: str, prefix: str, labels: str) -> dict[str, float]:
    """The samples of one child: {'_bucket{le="0.5"}': 2.0, '_count': 3.0, ...}."""
    found = {}
    for line in text.splitlines():
        if line.startswith(prefix) and labels in line and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            found[name.replace(labels, "").replace(",}", "}").replace("{}", "")] = float(value)
    return found


def test_requests_counted_in_plain_numbers_read_as_prometheus_client_would() -> None:
    """Bucket bounds (a value on a bound counts in that bucket), +Inf, count and sum, by
    status: as prometheus-client's own Counter and Histogram expose the same requests."""
    seconds = [0.0005, 0.0005001, 0.003, 0.25, 1, 10, 20.5, 0.00001]
    statuses = [200, 200, 404, 200, 503, 200, 200, 404]
    recorded = metrics.route_metrics("/unit/{test}", "PATCH")
    reference = CollectorRegistry()
    counter = Counter("jobq_http_requests", "", ["route", "method", "status"],
                      registry=reference)
    histogram = Histogram("jobq_http_request_seconds", "", ["route", "method"],
                          buckets=metrics.HTTP_BUCKETS, registry=reference)
    for status, value in zip(statuses, seconds, strict=True):
        recorded.record(status, value)
        counter.labels("/unit/{test}", "PATCH", str(status)).inc()
        histogram.labels("/unit/{test}", "PATCH").observe(value)
    ours = metrics.exposition({}).decode()
    theirs = generate_latest(reference).decode()
    labels = 'method="PATCH",route="/unit/{test}"'
    for prefix in ("jobq_http_requests_total", "jobq_http_request_seconds_"):
        expected = _samples(theirs, prefix, labels)
        assert len(expected) >= 3
        assert _samples(ours, prefix, labels) == expected
    assert f'jobq_http_request_seconds_bucket{{le="0.0005",{labels}}} 2.0' in ours
    assert f'jobq_http_requests_created{{{labels},status="404"}}' in ours
    assert f"jobq_http_request_seconds_created{{{labels}}}" in ours
