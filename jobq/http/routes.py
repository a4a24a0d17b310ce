"""The whole URL table."""

from __future__ import annotations

from starlette.routing import Route

from jobq.http import openapi
from jobq.http.endpoints import jobq, jobs, misc, ops, workers

GET, POST, DELETE = ["GET"], ["POST"], ["DELETE"]
JOB = "/jobs/{pid}/{sid}/{jobno}"

ROUTES = [
    # the queues; the busiest routes first (the router tries them in order)
    Route("/jobq/{pid}/push", jobq.push, methods=POST),
    Route("/jobq/{pid}/startjob", workers.startjob, methods=POST),  # leases, wait (issue 10)
    Route("/jobq/{pid}/update", jobq.update, methods=POST),
    Route("/jobq/{pid}/list", jobq.list_jobs, methods=GET),
    Route("/jobq/{pid}/count", jobq.count, methods=GET),
    Route("/jobq/{pid}/cancel", jobq.cancel, methods=POST),
    Route("/jobq/{pid}/jobsummary", jobq.jobsummary, methods=GET),
    Route("/jobq/{pid}/summary", jobq.summary, methods=GET),
    Route("/jobq/{pid}/summary/{state}", jobq.summary, methods=GET),
    Route("/jobq/{pid}/{sid}/summary", jobq.summary, methods=GET),
    Route("/jobq/{pid}/{sid}/summary/{state}", jobq.summary, methods=GET),
    Route("/jobq/{pid}/{sid}/{jobno}/cancel", jobq.cancel_job, methods=POST),
    # job metadata
    Route(JOB, jobs.get_meta, methods=GET),
    Route(JOB, jobs.post_meta, methods=POST),
    Route(JOB, jobs.delete, methods=DELETE),
    Route(JOB + "/{field}", jobs.get_meta, methods=GET),
    Route(JOB + "/{field}", jobs.post_meta, methods=POST),
    Route(JOB + "/{field}", jobs.delete, methods=DELETE),
    # spiders, projects, botgroups
    Route("/ids/{pid}/spider/{name}", misc.ids_spider, methods=GET),
    Route("/projects/jobsummaries", misc.project_jobsummaries, methods=GET),
    Route("/projects/{pid}/jobsummary", misc.project_jobsummary, methods=GET),
    Route("/projects/{pid}/settings", misc.get_settings, methods=GET),
    Route("/projects/{pid}/settings", misc.post_settings, methods=POST),
    Route("/projects/{pid}/settings/{name}", misc.get_settings, methods=GET),
    Route("/projects/{pid}/settings/{name}", misc.post_settings, methods=POST),
    Route("/projects/{pid}/settings/{name}", misc.delete_setting, methods=DELETE),
    Route("/spiders/{pid}/lastjobsummary", misc.lastjobsummary, methods=GET),
    Route("/spiders/{pid}/{sid}/lastjobsummary", misc.lastjobsummary, methods=GET),
    Route("/botgroups/{name}/max_running", misc.set_max_running, methods=POST),
    Route("/botgroups/{name}", misc.delete_botgroup, methods=DELETE),
    # workers and leases (issue 10)
    Route("/workers", workers.register, methods=POST),
    Route("/workers", workers.list_workers, methods=GET),
    Route("/workers/{worker_id}/heartbeat", workers.heartbeat, methods=POST),
    Route("/workers/{worker_id}", workers.unregister, methods=DELETE),
    # operations
    Route("/system/ts", misc.system_ts, methods=GET),
    Route("/healthz", misc.healthz, methods=GET),
    Route("/readyz", misc.readyz, methods=GET),
    Route("/openapi.json", openapi.endpoint, methods=GET),
    Route("/metrics", ops.metrics_endpoint, methods=GET),
]
