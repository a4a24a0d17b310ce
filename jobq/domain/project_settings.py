"""The project settings jobq itself reads, and what each must hold.

Other settings are the client's own and free-form. These are checked when a client sets
them (a 400 naming the setting), so a typo such as `"requeue_lost": "yes"` is refused
rather than silently ignored; a value stored before the check existed is still read
leniently by its reader (`leases.policy_of`, the job-data janitor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from jobq import errors


def is_count(value: Any) -> TypeGuard[int]:
    """An integer >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: Any) -> TypeGuard[int | float]:
    """An integer or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "requeue_lost": (lambda v: isinstance(v, bool), "expected true or false"),
    "max_retries": (is_count, "expected an integer >= 0"),
    "max_runtime": (lambda v: v is None or (is_number(v) and v > 0),
                    "expected a number of seconds > 0, or null"),
    "data_retention_days": (lambda v: v is None or (is_number(v) and v >= 0),
                            "expected a number of days >= 0, or null"),
}


def check(fields: dict[str, Any]) -> None:
    """Refuse a value jobq could not use for one of the settings it reads."""
    for name, (valid, expected) in _RULES.items():
        if name in fields and not valid(fields[name]):
            raise errors.BadRequest(f"setting {name}: {expected}")
