"""The whole URL table."""

from __future__ import annotations

from starlette.routing import Route

from jobq.http import openapi
from jobq.http.endpoints import app_api, jobq, jobs, misc, ops, schedules

GET, POST, DELETE = ["GET"], ["POST"], ["DELETE"]
JOB = "/jobs/{pid}/{sid}/{jobno}"

ROUTES = [
    # the queues; the busiest routes first (the router tries them in order)
    Route("/jobq/{pid}/push", jobq.push, methods=POST),
    Route("/jobq/{pid}/startjob", jobq.startjob, methods=POST),
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
    # operations
    Route("/system/ts", misc.system_ts, methods=GET),
    Route("/healthz", misc.healthz, methods=GET),
    Route("/readyz", misc.readyz, methods=GET),
    Route("/openapi.json", openapi.endpoint, methods=GET),
    Route("/metrics", ops.metrics_endpoint, methods=GET),
]

# -- app API and periodic jobs (issue 13): a block of its own, for the lead to port -------
API_SPIDER = "/api/v2/projects/{pid}/spiders/{sid}"
SCHEDULE = "/schedules/{pid}/{id}"
ROUTES += [
    Route("/api/run.json", app_api.run, methods=POST),
    Route("/api/schedule.json", app_api.run, methods=POST),  # the legacy name of run
    Route("/api/jobs/update.json", app_api.jobs_update, methods=POST),
    Route("/api/jobs/stop.json", app_api.jobs_stop, methods=POST),
    Route("/api/jobs/delete.json", app_api.jobs_delete, methods=POST),
    Route("/api/jobs/list.{fmt}", app_api.jobs_list, methods=GET),
    Route("/api/jobs/count.json", app_api.jobs_count, methods=GET),
    Route("/api/spiders/list.json", app_api.spiders_list, methods=GET),
    Route(API_SPIDER, app_api.spider, methods=GET),
    Route(API_SPIDER + "/tags", app_api.spider_tags, methods=["PATCH"]),
    Route("/api/scrapyd/listprojects.json", app_api.listprojects, methods=GET),
    Route("/api/v2/users/me", app_api.users_me, methods=GET),
    Route("/schedules/{pid}", schedules.list_schedules, methods=GET),
    Route("/schedules/{pid}", schedules.create, methods=POST),
    Route(SCHEDULE, schedules.get, methods=GET),
    Route(SCHEDULE, schedules.update, methods=["PATCH", "POST"]),
    Route(SCHEDULE, schedules.delete, methods=DELETE),
    Route(SCHEDULE + "/pause", schedules.pause, methods=POST),
    Route(SCHEDULE + "/resume", schedules.resume, methods=POST),
    Route(SCHEDULE + "/run", schedules.run_now, methods=POST),
]
