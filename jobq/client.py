"""A small JobQ client on httpx, used by the `jobq` command-line tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson


class JobqClientError(Exception):
    """The server refused a request; carries the response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"{response.status_code}: {response.text.strip()}")


class Client:
    def __init__(self, url: str, apikey: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + "/", auth=(apikey, ""),
                                  timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise JobqClientError(response)
        return response

    @staticmethod
    def _lines(response: httpx.Response) -> Iterator[Any]:
        for line in response.content.splitlines():
            if line.strip():
                yield orjson.loads(line)

    def push(self, project: int, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = b"\n".join(orjson.dumps(j) for j in jobs)
        return list(self._lines(self._request("POST", f"jobq/{project}/push", content=body)))

    def list_jobs(self, project: int, **params: Any) -> list[dict[str, Any]]:
        return list(self._lines(self._request("GET", f"jobq/{project}/list", params=params)))

    def summary(self, project: int, **params: Any) -> list[dict[str, Any]]:
        return list(self._lines(self._request("GET", f"jobq/{project}/summary", params=params)))

    def count(self, project: int, **params: Any) -> int:
        value: int = self._request("GET", f"jobq/{project}/count", params=params).json()
        return value

    def start(self, project: int, params: dict[str, Any]) -> dict[str, Any] | None:
        response = self._request("POST", f"jobq/{project}/startjob", content=orjson.dumps(params))
        if response.status_code == 204:
            return None
        job: dict[str, Any] = response.json()
        return job

    def update(self, project: int, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = b"\n".join(orjson.dumps(u) for u in updates)
        return list(self._lines(self._request("POST", f"jobq/{project}/update", content=body)))

    def cancel(self, project: int, keys: list[str]) -> int:
        body = orjson.dumps([{"key": k} for k in keys])
        count: int = self._request("POST", f"jobq/{project}/cancel", content=body).json()["count"]
        return count

    # -- periodic jobs (issue 13) ----------------------------------------------------------

    def schedules(self, project: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", f"schedules/{project}").json()[
            "schedules"]
        return found

    def add_schedule(self, project: int, fields: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = self._request(
            "POST", f"schedules/{project}", content=orjson.dumps(fields)).json()["schedule"]
        return made

    def schedule_action(self, project: int, schedule_id: int, action: str) -> dict[str, Any]:
        """`pause`, `resume` or `run` (run now: the answer has `jobid`)."""
        answer: dict[str, Any] = self._request(
            "POST", f"schedules/{project}/{schedule_id}/{action}").json()
        return answer

    def delete_schedule(self, project: int, schedule_id: int) -> None:
        self._request("DELETE", f"schedules/{project}/{schedule_id}")
