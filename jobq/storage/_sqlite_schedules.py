"""SQLite statements of the app API's spider data and of periodic jobs (issue 13).

Writes run in the group-commit writer's transaction, one SAVEPOINT each (see
`_sqlite_writer`), so `fire` claims its ticks and pushes their jobs atomically: both
commit, or neither. Several processes on one file serialise on SQLite's write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from jobq.domain import changes, schedules
from jobq.domain.records import NewJob, Pushed
from jobq.domain.schedules import Schedule, ScheduleSpec
from jobq.storage import _sqlite_tx as tx

#: tick rows older than this behind the schedule's cursor are pruned (ms: a week)
TICK_RETENTION_MS = 7 * 24 * 3600 * 1000

_COLUMNS = (
    "schedule_id, project_id, spec, paused, next_tick_ms, created_ms, updated_ms,"
    " last_tick_ms, last_job, last_outcome, last_fired_ms"
)


def _schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        schedule_id=int(row[0]), project=int(row[1]),
        spec=ScheduleSpec.from_json(orjson.loads(row[2])), paused=bool(row[3]),
        next_tick_ms=row[4], created_ms=row[5], updated_ms=row[6], last_tick_ms=row[7],
        last_job=row[8], last_outcome=row[9], last_fired_ms=row[10],
    )


# -- spiders ---------------------------------------------------------------------------


def list_spiders(conn: sqlite3.Connection, project: int) -> list[tuple[int, str, list[str]]]:
    rows = conn.execute(
        "SELECT s.spider_id, s.name, t.tags FROM spiders s LEFT JOIN spider_tags t"
        " ON t.project_id = s.project_id AND t.spider_id = s.spider_id"
        " WHERE s.project_id = ? ORDER BY s.spider_id",
        (project,),
    )
    return [(int(sid), name, orjson.loads(tags) if tags else []) for sid, name, tags in rows]


def spider_tags(conn: sqlite3.Connection, project: int, spider: int) -> list[str]:
    row = conn.execute(
        "SELECT tags FROM spider_tags WHERE project_id = ? AND spider_id = ?", (project, spider)
    ).fetchone()
    return list(orjson.loads(row[0])) if row else []


def update_spider_tags(
    conn: sqlite3.Connection, project: int, spider: int, add: Sequence[str],
    remove: Sequence[str],
) -> list[str]:
    tags = schedules.merge_tags(spider_tags(conn, project, spider), add, remove)
    conn.execute(
        "INSERT INTO spider_tags (project_id, spider_id, tags) VALUES (?, ?, ?)"
        " ON CONFLICT (project_id, spider_id) DO UPDATE SET tags = excluded.tags",
        (project, spider, changes.encode(tags)),
    )
    return tags


def register_spiders(
    conn: sqlite3.Connection, project: int, source: str, names: Sequence[str], now_ms: int
) -> None:
    tx.ensure_project(conn, project)  # as on PostgreSQL, whose writes lock the project row
    conn.execute(
        "DELETE FROM registered_spiders WHERE project_id = ? AND source = ?", (project, source)
    )
    conn.executemany(
        "INSERT OR IGNORE INTO registered_spiders (project_id, name, source, registered_ms)"
        " VALUES (?, ?, ?, ?)",
        [(project, name, source, now_ms) for name in names],
    )


def registered_spiders(conn: sqlite3.Connection, project: int) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT name FROM registered_spiders WHERE project_id = ? ORDER BY name",
        (project,),
    )]


# -- schedules -------------------------------------------------------------------------


def create_schedule(
    conn: sqlite3.Connection, project: int, spec: ScheduleSpec, paused: bool,
    next_tick_ms: int | None, now_ms: int,
) -> Schedule:
    tx.ensure_project(conn, project)
    row = conn.execute(
        "INSERT INTO schedules (project_id, spec, paused, next_tick_ms, created_ms, updated_ms)"
        f" VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (project, changes.encode(spec.to_json()), int(paused), next_tick_ms, now_ms, now_ms),
    ).fetchone()
    return _schedule(row)


def get_schedule(conn: sqlite3.Connection, project: int, schedule_id: int) -> Schedule | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM schedules WHERE project_id = ? AND schedule_id = ?",
        (project, schedule_id),
    ).fetchone()
    return _schedule(row) if row else None


def list_schedules(conn: sqlite3.Connection, project: int) -> list[Schedule]:
    return [_schedule(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM schedules WHERE project_id = ? ORDER BY schedule_id",
        (project,),
    )]


def due_schedules(conn: sqlite3.Connection, now_ms: int, limit: int) -> list[Schedule]:
    return [_schedule(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM schedules WHERE paused = 0 AND next_tick_ms <= ?"
        " ORDER BY next_tick_ms LIMIT ?",
        (now_ms, limit),
    )]


def next_due_ms(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MIN(next_tick_ms) FROM schedules WHERE paused = 0").fetchone()
    return row[0] if row else None


def update_schedule(
    conn: sqlite3.Connection, project: int, schedule_id: int, spec: ScheduleSpec | None,
    paused: bool | None, next_tick_ms: int | None, set_next: bool, now_ms: int,
) -> Schedule | None:
    assignments: list[str] = ["updated_ms = ?"]
    values: list[Any] = [now_ms]
    if spec is not None:
        assignments.append("spec = ?")
        values.append(changes.encode(spec.to_json()))
    if paused is not None:
        assignments.append("paused = ?")
        values.append(int(paused))
    if set_next:
        assignments.append("next_tick_ms = ?")
        values.append(next_tick_ms)
    row = conn.execute(
        f"UPDATE schedules SET {', '.join(assignments)}"
        f" WHERE project_id = ? AND schedule_id = ? RETURNING {_COLUMNS}",
        (*values, project, schedule_id),
    ).fetchone()
    return _schedule(row) if row else None


def delete_schedule(conn: sqlite3.Connection, project: int, schedule_id: int) -> bool:
    gone = conn.execute(
        "DELETE FROM schedules WHERE project_id = ? AND schedule_id = ?", (project, schedule_id)
    ).rowcount > 0
    if gone:
        conn.execute("DELETE FROM schedule_ticks WHERE schedule_id = ?", (schedule_id,))
    return gone


def fire(
    conn: sqlite3.Connection, project: int, schedule_id: int, expected_next: int | None,
    new_next: int | None, firings: Sequence[tuple[int | None, NewJob]], missed: int,
    actor: str, now_ms: int,
) -> list[Pushed] | None:
    """Claim the ticks and push their jobs, in one transaction; None (and nothing done)
    when the schedule's cursor is no longer `expected_next` (another node handled these
    ticks, or the schedule was paused, changed or deleted)."""
    if expected_next is not None:
        claimed = conn.execute(
            "UPDATE schedules SET next_tick_ms = ? WHERE project_id = ? AND schedule_id = ?"
            " AND next_tick_ms = ? AND paused = 0",
            (new_next, project, schedule_id, expected_next),
        ).rowcount
        if not claimed:
            return None
    outcomes: list[Pushed] = []
    last: tuple[int | None, Pushed] | None = None
    for tick, job in firings:
        if tick is not None and not conn.execute(
            "INSERT OR IGNORE INTO schedule_ticks (schedule_id, tick_ms, fired_ms, outcome)"
            " VALUES (?, ?, ?, 'claimed')",
            (schedule_id, tick, now_ms),
        ).rowcount:
            outcomes.append(Pushed(None))  # this tick was handled before: never twice
            continue
        (pushed,) = tx.push(conn, project, [job], actor, now_ms)
        outcomes.append(pushed)
        last = (tick, pushed)
        if tick is not None:
            conn.execute(
                "UPDATE schedule_ticks SET job = ?, outcome = ? WHERE schedule_id = ?"
                " AND tick_ms = ?",
                (None if pushed.key is None else str(pushed.key),
                 schedules.outcome(pushed.key, pushed.duplicate_of, 0), schedule_id, tick),
            )
    if last is not None or missed:
        tick, pushed = last if last is not None else (None, Pushed(None))
        conn.execute(
            "UPDATE schedules SET last_tick_ms = COALESCE(?, last_tick_ms),"
            " last_job = COALESCE(?, last_job), last_outcome = ?, last_fired_ms = ?"
            " WHERE schedule_id = ?",
            (tick, None if pushed.key is None else str(pushed.key),
             schedules.outcome(pushed.key, pushed.duplicate_of, missed), now_ms, schedule_id),
        )
    if new_next is not None:
        conn.execute(
            "DELETE FROM schedule_ticks WHERE schedule_id = ? AND tick_ms < ?",
            (schedule_id, new_next - TICK_RETENTION_MS),
        )
    return outcomes


def ticks(conn: sqlite3.Connection, schedule_id: int, limit: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT tick_ms, fired_ms, job, outcome FROM schedule_ticks WHERE schedule_id = ?"
        " ORDER BY tick_ms DESC LIMIT ?",
        (schedule_id, limit),
    ).fetchall()
