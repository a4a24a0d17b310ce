"""The route table compiled for dispatch, once at start-up: routes grouped by method, first
path segment and number of segments, each with its literal segments to compare, its path
parameters' parsers, the query parameters it knows and parses, and its metrics recorder.
A request then costs a dict lookup and a comparison of a few segments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jobq import errors, metrics
from jobq.domain.jobs import JobKey
from jobq.http.call import Query
from jobq.http.params import COMMON
from jobq.http.spec import Access, Body, ErrorShape, Handler, Route

#: the methods routes may have (HEAD: every GET route answers it too)
METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")

#: the path parameters naming the job of an `Access.JOB` route, in order
JOB_PARAMS = ["pid", "sid", "jobno"]


class NotRouted(errors.JobqError):
    """No route for this path (404), or not for this method (405, with `allow`)."""

    def __init__(self, message: str, status: int, allow: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


class Compiled:
    """One route, ready to match and parse."""

    __slots__ = ("access", "body", "empty_value", "error_shape", "handler", "known", "literals",
                 "metrics", "path_params", "query_params", "required", "route")

    def __init__(self, route: Route, method: str) -> None:
        self.route = route
        self.handler: Handler = route.handler
        self.access: Access = route.access
        self.body: Body = route.body
        #: a VALUE body that is not required: an empty body is None
        self.empty_value = not route.body.describe.get("required", True)
        self.error_shape: ErrorShape | None = route.error_shape
        if route.method not in METHODS or route.method == "HEAD":
            raise ValueError(f"{route.path}: method {route.method!r} (one of {METHODS[2:]},"
                             " or GET, which answers HEAD too)")
        segments = route.path[1:].split("/")
        literals = []
        by_name = {p.name: p for p in route.params if p.where == "path"}
        path_params: list[tuple[int, str, Callable[[str], Any]]] = []
        for i, segment in enumerate(segments):
            if segment.startswith("{"):
                name = segment[1:-1]
                if name not in by_name or by_name[name].parse is None:
                    raise ValueError(f"{route.path}: path parameter {name!r} not declared")
                path_params.append((i, name, by_name.pop(name).parse))  # type: ignore[arg-type]
            else:
                literals.append((i, segment))
        if by_name:
            raise ValueError(f"{route.path}: {sorted(by_name)} declared but not in the path")
        if not literals or literals[0][0] != 0:
            raise ValueError(f"{route.path}: the first segment must be literal")
        if route.access is Access.JOB and [n for _, n, _ in path_params][:3] != JOB_PARAMS:
            raise ValueError(f"{route.path}: access JOB needs the path to start with a job")
        self.literals = tuple(literals[1:])  # the first one is the dispatch key
        self.path_params = tuple(path_params)
        query = [p for p in route.params if p.where == "query"]
        # public routes (health probes, the clock) take any parameters, as they always did:
        # a probe must not fail on a cache-busting parameter
        open_query = route.access is Access.PUBLIC or route.any_query
        self.known = None if open_query else COMMON | {p.name for p in query}
        self.query_params = tuple((p.name, p.parse) for p in query if p.parse is not None)
        self.required = tuple(p.name for p in query if p.required)
        self.metrics = metrics.route_metrics(route.path, method)

    def matches(self, segments: list[str]) -> bool:
        for i, literal in self.literals:
            if segments[i] != literal:
                return False
        # a parameter is never empty (`/jobs/1/1/1/` names no field); a loop, as all() of a
        # generator costs two calls more a request
        for i, _, _ in self.path_params:  # noqa: SIM110
            if not segments[i]:
                return False
        return True

    def job(self, segments: list[str]) -> JobKey:
        """The job an `Access.JOB` route's path names (its first three parameters)."""
        return JobKey(*(parse(segments[i]) for i, _, parse in self.path_params[:3]))

    def parse_path(self, segments: list[str]) -> dict[str, Any]:
        args = {}
        for i, name, parse in self.path_params:
            args[name] = parse(segments[i])
        return args

    def parse_query(self, query: Query, args: dict[str, Any]) -> None:
        """Refuse unknown parameters, then parse the typed ones into `args`."""
        if query:
            known = self.known
            if known is not None:
                for given in query:
                    if given not in known:
                        unknown = sorted({n for n in query if n not in known})
                        raise errors.BadRequest(f"unknown parameter(s): {', '.join(unknown)}")
            for name, parse in self.query_params:
                text = query.get(name)
                if text is not None:
                    args[name] = parse(text)
        for name in self.required:
            if not query.get(name):
                raise errors.BadRequest(f"{name}: this parameter is required")


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes: dict[tuple[str, str, int], list[Compiled]] = {}
        seen = set()
        for route in routes:
            if (route.method, route.path) in seen:
                raise ValueError(f"{route.method} {route.path} declared twice")
            seen.add((route.method, route.path))
            methods = [route.method, "HEAD"] if route.method == "GET" else [route.method]
            for method in methods:
                compiled = Compiled(route, method)
                key = (method, route.path[1:].split("/", 1)[0], route.path.count("/"))
                self._routes.setdefault(key, []).append(compiled)

    def match(self, method: str, path: str) -> tuple[Compiled, list[str]]:
        segments = path[1:].split("/")
        for compiled in self._routes.get((method, segments[0], len(segments)), ()):
            if compiled.matches(segments):
                return compiled, segments
        allow = [m for m in METHODS if m != method and any(
            c.matches(segments) for c in self._routes.get((m, segments[0], len(segments)), ())
        )]
        if allow:
            raise NotRouted("Method Not Allowed", 405, allow)
        raise NotRouted("Not Found", 404)

    @staticmethod
    def unmatched(method: str) -> metrics.RequestMetrics:
        """The metrics of requests no route matched (by method: a client picks the methods,
        so only the few the server knows get a child of their own)."""
        return metrics.route_metrics("unmatched", method if method in METHODS else "other")
