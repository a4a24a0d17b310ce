"""`jobq worker`: runs the jobs of a JobQ server the way Scrapy Cloud runs them
(`start-crawl` of scrapinghub-entrypoint-scrapy, a named pipe, outcomes of RUNNER.md).

- `pipe`: the pipe protocol (`LOG`/`ITM`/`REQ`/`STA`/`FIN` lines) and its reader.
- `outcome`: the close_reason a job ends with.
- `process`: one job's working directory, FIFO, environment and process group, and the
  warm interpreter that waits for the next job.
- `api`: every call the worker makes to the server.
- `spool`: the bounded on-disk buffer between a job's pipe and the server.
- `job`: one claimed job, from its start to its outcome.
- `spiders`: the project's spiders, made known to the server.
- `runner`: claims, slots, heartbeats, shutdown.
- `cli`: the `jobq worker` command.
"""
