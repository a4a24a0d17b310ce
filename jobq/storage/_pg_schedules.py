"""PostgreSQL statements of the app API's spider data and of periodic jobs (issue 13).

The writes that touch a project's jobs or schedules run as operations of the project's
group-commit transaction (`_pg_tx.Tx`), which holds the project row's lock until COMMIT:
`fire` claims its ticks (compare-and-set on `next_tick_ms`, then the `schedule_ticks`
primary key) and pushes their jobs in that one transaction, so on every node a tick is
pushed once or not at all. These mirror `_sqlite_schedules` statement for statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from jobq.domain import changes, schedules
from jobq.domain.records import NewJob, Pushed
from jobq.domain.schedules import Schedule, ScheduleSpec
from jobq.storage import _pg_tx as tx

TICK_RETENTION_MS = 7 * 24 * 3600 * 1000

_COLUMNS = (
    "schedule_id, project_id, spec, paused, next_tick_ms, created_ms, updated_ms,"
    " last_tick_ms, last_job, last_outcome, last_fired_ms"
)

LIST_SPIDERS = (
    "SELECT s.spider_id, s.name, t.tags FROM spiders s LEFT JOIN spider_tags t"
    " ON t.project_id = s.project_id AND t.spider_id = s.spider_id"
    " WHERE s.project_id = %(project)s ORDER BY s.spider_id"
)
SPIDER_TAGS = (
    "SELECT tags FROM spider_tags WHERE project_id = %(project)s AND spider_id = %(spider)s"
)
REGISTERED_SPIDERS = (
    "SELECT DISTINCT name FROM registered_spiders WHERE project_id = %(project)s ORDER BY name"
)
GET_SCHEDULE = (
    f"SELECT {_COLUMNS} FROM schedules"
    " WHERE project_id = %(project)s AND schedule_id = %(id)s"
)
LIST_SCHEDULES = (
    f"SELECT {_COLUMNS} FROM schedules WHERE project_id = %(project)s ORDER BY schedule_id"
)
DUE_SCHEDULES = (
    f"SELECT {_COLUMNS} FROM schedules WHERE NOT paused AND next_tick_ms <= %(now)s"
    " ORDER BY next_tick_ms LIMIT %(limit)s"
)
NEXT_DUE = "SELECT MIN(next_tick_ms) FROM schedules WHERE NOT paused"
TICKS = (
    "SELECT tick_ms, fired_ms, job, outcome FROM schedule_ticks WHERE schedule_id = %(id)s"
    " ORDER BY tick_ms DESC LIMIT %(limit)s"
)


def schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        schedule_id=int(row[0]), project=int(row[1]),
        spec=ScheduleSpec.from_json(orjson.loads(row[2])), paused=bool(row[3]),
        next_tick_ms=None if row[4] is None else int(row[4]), created_ms=int(row[5]),
        updated_ms=int(row[6]), last_tick_ms=None if row[7] is None else int(row[7]),
        last_job=row[8], last_outcome=row[9],
        last_fired_ms=None if row[10] is None else int(row[10]),
    )


def spider_row(row: Sequence[Any]) -> tuple[int, str, list[str]]:
    return int(row[0]), str(row[1]), orjson.loads(row[2]) if row[2] else []


async def update_spider_tags(
    t: tx.Tx, spider: int, add: Sequence[str], remove: Sequence[str]
) -> list[str]:
    row = await t.one(SPIDER_TAGS + " FOR UPDATE", {"project": t.project, "spider": spider})
    tags = schedules.merge_tags(list(orjson.loads(row[0])) if row else [], add, remove)
    await t.conn.execute(
        "INSERT INTO spider_tags (project_id, spider_id, tags)"
        " VALUES (%(project)s, %(spider)s, %(tags)s)"
        " ON CONFLICT (project_id, spider_id) DO UPDATE SET tags = excluded.tags",
        {"project": t.project, "spider": spider, "tags": changes.encode(tags)},
    )
    return tags


async def register_spiders(t: tx.Tx, source: str, names: Sequence[str], now_ms: int) -> None:
    await t.conn.execute(
        "DELETE FROM registered_spiders WHERE project_id = %(project)s AND source = %(source)s",
        {"project": t.project, "source": source},
    )
    if names:
        await t.conn.execute(
            "INSERT INTO registered_spiders (project_id, name, source, registered_ms)"
            " SELECT %(project)s, n, %(source)s, %(now)s FROM unnest(%(names)s::text[]) n"
            " ON CONFLICT DO NOTHING",
            {"project": t.project, "source": source, "now": now_ms, "names": list(names)},
        )


async def create_schedule(
    t: tx.Tx, spec: ScheduleSpec, paused: bool, next_tick_ms: int | None, now_ms: int
) -> Schedule:
    row = await t.one(
        "INSERT INTO schedules (project_id, spec, paused, next_tick_ms, created_ms, updated_ms)"
        " VALUES (%(project)s, %(spec)s, %(paused)s, %(next)s, %(now)s, %(now)s)"
        f" RETURNING {_COLUMNS}",
        {"project": t.project, "spec": changes.encode(spec.to_json()), "paused": paused,
         "next": next_tick_ms, "now": now_ms},
    )
    assert row is not None
    return schedule(row)


async def update_schedule(
    t: tx.Tx, schedule_id: int, spec: ScheduleSpec | None, paused: bool | None,
    next_tick_ms: int | None, set_next: bool, now_ms: int,
) -> Schedule | None:
    row = await t.one(
        "UPDATE schedules SET updated_ms = %(now)s,"
        " spec = COALESCE(%(spec)s, spec), paused = COALESCE(%(paused)s, paused),"
        " next_tick_ms = CASE WHEN %(set_next)s THEN %(next)s::bigint ELSE next_tick_ms END"
        f" WHERE project_id = %(project)s AND schedule_id = %(id)s RETURNING {_COLUMNS}",
        {"now": now_ms, "spec": None if spec is None else changes.encode(spec.to_json()),
         "paused": paused, "set_next": set_next, "next": next_tick_ms,
         "project": t.project, "id": schedule_id},
    )
    return schedule(row) if row else None


async def delete_schedule(t: tx.Tx, schedule_id: int) -> bool:
    cursor = await t.conn.execute(
        "DELETE FROM schedules WHERE project_id = %(project)s AND schedule_id = %(id)s",
        {"project": t.project, "id": schedule_id},
    )
    if cursor.rowcount > 0:
        await t.conn.execute(
            "DELETE FROM schedule_ticks WHERE schedule_id = %(id)s", {"id": schedule_id}
        )
        return True
    return False


async def fire(
    t: tx.Tx, schedule_id: int, expected_next: int | None, new_next: int | None,
    firings: Sequence[tuple[int | None, NewJob]], missed: int, actor: str,
) -> list[Pushed] | None:
    """See `_sqlite_schedules.fire`."""
    if expected_next is not None:
        cursor = await t.conn.execute(
            "UPDATE schedules SET next_tick_ms = %(new)s WHERE project_id = %(project)s"
            " AND schedule_id = %(id)s AND next_tick_ms = %(expected)s AND NOT paused",
            {"new": new_next, "project": t.project, "id": schedule_id,
             "expected": expected_next},
        )
        if cursor.rowcount == 0:
            return None
    outcomes: list[Pushed] = []
    last: tuple[int | None, Pushed] | None = None
    for tick, job in firings:
        if tick is not None:
            cursor = await t.conn.execute(
                "INSERT INTO schedule_ticks (schedule_id, tick_ms, fired_ms, outcome)"
                " VALUES (%(id)s, %(tick)s, %(now)s, 'claimed') ON CONFLICT DO NOTHING",
                {"id": schedule_id, "tick": tick, "now": t.now_ms},
            )
            if cursor.rowcount == 0:
                outcomes.append(Pushed(None))  # this tick was handled before: never twice
                continue
        (pushed,) = await tx.push(t, [job], actor)
        outcomes.append(pushed)
        last = (tick, pushed)
        if tick is not None:
            await t.conn.execute(
                "UPDATE schedule_ticks SET job = %(job)s, outcome = %(outcome)s"
                " WHERE schedule_id = %(id)s AND tick_ms = %(tick)s",
                {"job": None if pushed.key is None else str(pushed.key),
                 "outcome": schedules.outcome(pushed.key, pushed.duplicate_of, 0),
                 "id": schedule_id, "tick": tick},
            )
    if last is not None or missed:
        tick, pushed = last if last is not None else (None, Pushed(None))
        await t.conn.execute(
            "UPDATE schedules SET last_tick_ms = COALESCE(%(tick)s, last_tick_ms),"
            " last_job = COALESCE(%(job)s, last_job), last_outcome = %(outcome)s,"
            " last_fired_ms = %(now)s WHERE schedule_id = %(id)s",
            {"tick": tick, "job": None if pushed.key is None else str(pushed.key),
             "outcome": schedules.outcome(pushed.key, pushed.duplicate_of, missed),
             "now": t.now_ms, "id": schedule_id},
        )
    if new_next is not None:
        await t.conn.execute(
            "DELETE FROM schedule_ticks WHERE schedule_id = %(id)s AND tick_ms < %(before)s",
            {"id": schedule_id, "before": new_next - TICK_RETENTION_MS},
        )
    return outcomes
