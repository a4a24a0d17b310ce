"""Every call the worker makes to the server, in one place: registration, heartbeats,
claims (`startjob` with a lease and a long poll), job data batches, metadata and the
outcome. The routes are those of issues 10 (workers) and 11 (job data).

Two kinds of failure: `Unavailable` (the server is out of reach, busy or restarting:
try again later, nothing is lost) and `Refused` (the server answered that the request is
wrong: retrying it would not help).

A claimed job's writes (records, `scrapystats`, the outcome) go with the job's token from
the claim answer (`auth`), as Scrapy Cloud's runner writes with the job's auth: the token
is bound to the run it was issued for, so once the server took the run from this worker
(declared lost, then requeued or claimed by another worker) its writes are refused (401,
`Refused.run_taken`) and change nothing. Everything else goes with the worker's API key.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

#: statuses that say "later", not "no"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: seconds a claim may wait on the server for a job (`startjob?wait=`)
CLAIM_WAIT = 20
DATA_KINDS = ("items", "logs", "requests")


class ApiError(Exception):
    pass


class Unavailable(ApiError):
    """The server could not be reached or asked to retry."""


class Refused(ApiError):
    """The server refused the request (a 4xx other than those of RETRY_STATUSES)."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        super().__init__(f"{status}: {text.strip()[:500]}")

    @property
    def run_taken(self) -> bool:
        """A job token refused: the run it was issued for is not this worker's any more
        (or the job is gone)."""
        return self.status == 401


#: credentials of one job's writes: its key and token (None: the worker's API key)
JobAuth = tuple[str, str] | None


class Api:
    def __init__(self, url: str, apikey: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/"
        self._http = httpx.Client(base_url=self.url, auth=(apikey, ""),
                                  timeout=httpx.Timeout(timeout, read=CLAIM_WAIT + timeout))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, auth: JobAuth = None, **kwargs: Any
              ) -> httpx.Response:
        if auth is not None:
            kwargs["auth"] = auth
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code in RETRY_STATUSES:
            raise Unavailable(f"{method} {path}: {response.status_code}")
        if response.status_code >= 400:
            raise Refused(response.status_code, response.text)
        return response

    # -- the worker --------------------------------------------------------------------------

    def register(self, info: dict[str, Any]) -> dict[str, Any]:
        """`POST workers`: the worker's id and the server's intervals
        (`heartbeat_interval`, `worker_timeout`, `cancel_timeout`)."""
        answer: dict[str, Any] = self._call("POST", "workers", content=orjson.dumps(info)).json()
        return answer

    def heartbeat(self, worker_id: str, keys: Sequence[str]) -> dict[str, Any]:
        """Renews the leases of `keys`; the answer says, per job, continue or stop."""
        answer: dict[str, Any] = self._call(
            "POST", f"workers/{worker_id}/heartbeat",
            content=orjson.dumps({"jobs": list(keys)})).json()
        return answer

    def unregister(self, worker_id: str) -> None:
        self._call("DELETE", f"workers/{worker_id}")

    def claim(self, project: int, worker_id: str, botgroup: str | None, wait: int
              ) -> dict[str, Any] | None:
        """The next job of `project` for this worker (leased to it), waiting up to `wait`
        seconds on the server; None when there was none."""
        params: dict[str, Any] = {"worker_id": worker_id}
        if botgroup:
            params["botgroup"] = botgroup
        response = self._call("POST", f"jobq/{project}/startjob",
                              params={"wait": wait} if wait else None,
                              content=orjson.dumps(params))
        if response.status_code == 204:
            return None
        job: dict[str, Any] = response.json()
        return job

    def register_spiders(self, worker_id: str, names: list[str]) -> None:
        """Tell the server which spiders this worker can run (for each of its projects)."""
        self._call("POST", f"workers/{worker_id}/spiders", content=orjson.dumps({"spiders": names}))

    def project_settings(self, project: int) -> dict[str, Any]:
        settings: dict[str, Any] = self._call("GET", f"projects/{project}/settings").json()
        return settings

    # -- a job ---------------------------------------------------------------------------------

    def write_batch(self, kind: str, key: str, start: int, lines: Sequence[bytes],
                    auth: JobAuth = None) -> None:
        """Records `start`, `start + 1`, ... of a job, gzip JSON lines. Idempotent: the server
        keeps the first write of each index, so a batch sent again is harmless."""
        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=5)
        self._call("POST", f"{kind}/{key}", auth, params={"start": start}, content=body,
                   headers={"Content-Encoding": "gzip",
                            "Content-Type": "application/x-jsonlines"})

    def set_meta(self, key: str, field: str, value: Any, auth: JobAuth = None) -> None:
        self._call("POST", f"jobs/{key}/{field}", auth, content=orjson.dumps(value))

    def push(self, project: int, job: dict[str, Any]) -> str:
        answer: dict[str, Any] = self._call("POST", f"jobq/{project}/push",
                                            content=orjson.dumps(job)).json()
        if "error" in answer:
            raise Refused(400, str(answer["error"]))
        return str(answer["key"])

    def job_meta(self, key: str) -> dict[str, Any]:
        meta: dict[str, Any] = self._call("GET", f"jobs/{key}").json()
        return meta

    def data_count(self, kind: str, key: str) -> int:
        """How many items, log lines or requests a job has stored."""
        stats = self._call("GET", f"{kind}/{key}/stats").json()
        return int(stats.get("totals", {}).get("input_values", 0))

    def finish(self, key: str, close_reason: str, auth: JobAuth = None) -> None:
        project = key.split("/", 1)[0]
        update = {"key": key, "state": "finished", "close_reason": close_reason}
        self._call("POST", f"jobq/{project}/update", auth, content=orjson.dumps(update))
