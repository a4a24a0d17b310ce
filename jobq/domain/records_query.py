"""Reading what a job produced: `filter` triples, `meta` fields and the checked form of a
read (`ReadQuery`). Pure rules, no I/O."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jobq import errors
from jobq.domain.records_data import META_FIELDS

Predicate = Callable[[dict[str, Any]], bool]
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_MISSING = object()


def _compare(op: str, values: list[Any]) -> Callable[[Any], bool]:
    if op in ("=", "==", "in"):
        return lambda v: v in values
    if op in ("!=", "<>", "notin"):
        return lambda v: v not in values
    if op in ("<", "<=", ">", ">="):
        if len(values) != 1:
            raise ValueError(f"{op!r} takes one value")
        bound = values[0]
        compare: Callable[[Any, Any], Any] = _ORDER[op]

        def ordered(v: Any) -> bool:
            try:
                return bool(compare(v, bound))
            except TypeError:  # a string against a number: no match
                return False

        return ordered
    if op in ("contains", "icontains"):
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"{op!r} takes strings")
        if op == "icontains":
            lowered = [v.lower() for v in values]
            return lambda v: isinstance(v, str) and any(s in v.lower() for s in lowered)
        return lambda v: isinstance(v, str) and any(s in v for s in values)
    if op == "haselement":
        return lambda v: isinstance(v, list) and any(x in v for x in values)
    if op == "hasnotelement":
        return lambda v: not (isinstance(v, list) and any(x in v for x in values))
    raise ValueError(f"unknown operator {op!r}")


def parse_filter(raw: str) -> Predicate:
    """A `filter` parameter: a JSON triple `[FIELD, OP, [VALUES]]` (or `[FIELD, "exists",
    []]`); `=`/`in` match any value, `!=` none, `<`..`>=` one bound, `contains` a
    substring, `haselement`/`hasnotelement` a list element."""
    try:
        triple = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.BadRequest(f"filter: {raw!r} is not JSON") from None
    if (not isinstance(triple, list) or len(triple) != 3 or not isinstance(triple[0], str)
            or not isinstance(triple[1], str) or not isinstance(triple[2], list)):
        raise errors.BadRequest(
            f"filter: {raw!r} is not a triple like [\"level\", \">=\", [30]]")
    name, op, values = triple
    if op in ("exists", "notexists"):
        present = op == "exists"
        return lambda record: (name in record) is present
    try:
        test = _compare(op, values)
    except ValueError as exc:
        raise errors.BadRequest(f"filter: {raw!r}: {exc}") from None
    missing_matches = op in ("!=", "<>", "notin", "hasnotelement")

    def matches(record: dict[str, Any]) -> bool:
        value = record.get(name, _MISSING)
        if value is _MISSING:
            return missing_matches
        return test(value)

    return matches


@dataclass(frozen=True, slots=True)
class ReadQuery:
    """What a read asks for, checked for form: the first index, how many, which records."""

    start: int = 0
    count: int | None = None
    indexes: tuple[int, ...] | None = None
    filters: tuple[Predicate, ...] = ()
    meta: tuple[str, ...] = ()
    nodata: bool = False
    startts: int | None = None
    endts: int | None = None

    @property
    def plain(self) -> bool:
        """True when records go out as stored, with at most meta fields added (the fast
        path: no record is parsed)."""
        return not self.filters and not self.nodata

    def keep(self, record: dict[str, Any]) -> bool:
        return all(f(record) for f in self.filters)


def parse_meta(values: Sequence[str]) -> tuple[str, ...]:
    """`meta=_key&meta=_ts` or `meta=_key,_ts`."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in META_FIELDS:
                raise errors.BadRequest(f"meta: unknown meta field {name!r} (_key or _ts)")
            if name not in names:
                names.append(name)
    return tuple(names)
