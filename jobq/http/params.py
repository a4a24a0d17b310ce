"""Query parameters: parsed strictly, each error naming the parameter."""

from __future__ import annotations

from typing import Any

import orjson

from jobq import errors
from jobq.core import validation
from jobq.core.queue import ListRequest
from jobq.domain import jobs
from jobq.domain.jobs import JobKey, State
from jobq.http.call import Query
from jobq.http.spec import MAX_INT

#: largest `startts`/`endts`: its position (see jobq.domain.jobs) still fits 64 bits
MAX_TS = MAX_INT >> jobs.POSITION_SHIFT

#: parameters every endpoint accepts (auth and output shaping)
COMMON = frozenset({"apikey", "format", "saveas", "fields", "include_headers", "sep", "quote",
                    "escape", "lineend", "meta"})


def flag(params: Query, name: str) -> bool:
    return params.get(name, "").lower() in ("1", "true", "yes", "on")


def _filters(params: Query, req: ListRequest) -> None:
    """The legacy `filter` parameter: JSON triples [field, operator, [values]]."""
    for raw in params.getlist("filter"):
        try:
            triple = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.BadRequest(f"filter: {raw!r} is not JSON") from None
        if (not isinstance(triple, list) or len(triple) != 3
                or not isinstance(triple[2], list)
                or not all(isinstance(v, str) for v in triple[2])):
            raise errors.BadRequest(
                f"filter: {raw!r} is not a triple like [\"state\", \"=\", [\"finished\"]]"
            )
        field, op, values = triple
        match (field, op):
            case ("state", "="):
                req.states = tuple(State.parse(v, "filter state") for v in values)
            case ("spider", "="):
                req.spiders += tuple(values)
            case ("tags", "haselement"):
                req.has_tags += tuple(values)
            case ("tags", "hasnotelement"):
                req.lacks_tags += tuple(values)
            case ("close_reason", "="):
                req.close_reasons += tuple(values)
            case _:
                raise errors.BadRequest(f"filter: unsupported condition {field!r} {op!r}")


def list_request(params: Query, args: dict[str, Any],
                 default_states: tuple[State, ...]) -> ListRequest:
    """The list filters; `args` holds the integer ones, parsed by the route's parameters."""
    states = tuple(dict.fromkeys(State.parse(s) for s in params.getlist("state")))
    stop = params.get("stop")
    jobmeta = params.getlist("jobmeta")
    keys = params.getlist("key")
    req = ListRequest(
        states=states or default_states,
        spiders=tuple(params.getlist("spider")),
        has_tags=tuple(params.getlist("has_tag")),
        lacks_tags=tuple(params.getlist("lacks_tag")),
        # clamping keeps the meaning: no position ever reaches MAX_TS
        startts=args.get("startts"),
        endts=args.get("endts"),
        stop=JobKey.parse(stop, "stop") if stop else None,
        count=args.get("count"),
        start=args.get("start") or 0,
        jobmeta=tuple(jobmeta) if jobmeta else None,
        keys=tuple(JobKey.parse(k, "key") for k in keys) if keys else None,
    )
    _filters(params, req)
    # after the filters: the legacy `state` triple must not reach deleted jobs either
    if State.DELETED in req.states:
        raise errors.BadRequest("state: deleted jobs are never listed")
    for what, values in (("spider", req.spiders), ("has_tag", req.has_tags),
                         ("lacks_tag", req.lacks_tags), ("filter", req.close_reasons)):
        for value in values:
            validation.no_nul(value, what)
    return req
