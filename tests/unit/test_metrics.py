"""The /metrics text, built at scrape time."""

from __future__ import annotations

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
