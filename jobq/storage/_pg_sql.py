"""The SQL files of the PostgreSQL backend: the schema, the numbered migrations and the
named queries of `queries.sql` (`-- name: NAME` headers, parsed once, as procrastinate
does)."""

from __future__ import annotations

import functools
import re
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def sql_file(name: str) -> str:
    return (resources.files("jobq.storage") / "sql" / "postgres" / name).read_text("utf-8")


def migrations() -> list[tuple[int, str]]:
    """The numbered migrations (`NNNN_name.sql`), in order."""
    folder = resources.files("jobq.storage") / "sql" / "postgres" / "migrations"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def parse_queries(text: str) -> dict[str, str]:
    """`-- name: NAME` starts a query; it runs until the next header. Comments and blank
    lines around a query are dropped, a trailing `;` too."""
    queries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        lines = [line for line in body if not line.lstrip().startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = sql

    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            flush()
            name, body = match[1], []
        else:
            body.append(line)
    flush()
    return queries


@functools.cache
def queries() -> dict[str, str]:
    return parse_queries(sql_file("queries.sql"))


class _Queries:
    """`Q.name` is the SQL of the named query `name`."""

    def __getattr__(self, name: str) -> str:
        try:
            return queries()[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in queries.sql") from None


Q = _Queries()
