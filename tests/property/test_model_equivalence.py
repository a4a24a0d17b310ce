"""Property tests: random sequences of push / startjob / update / cancel / delete
(jobq update to `deleted`) / remove (DELETE jobs/K) / metadata POST and DELETE of a
field (tags feed the filters), driven through `JobQueue` on a real
database, must leave jobq answering `list`, `count`, `summary` and `jobsummary` exactly
as the in-memory model of the spec (`tests.property.model`) does, after every step.

Each hypothesis example gets a fresh database: a new SQLite file, or the test's PostgreSQL
database emptied with TRUNCATE. Timestamps are not known to the model: rows are compared
on keys, states, order and fields, and every time a row shows is checked against the
model's logical clock (a state's time never changes once entered, and within a project a
later entry never has an earlier time).

Steps are drawn from static strategies (so that generation stays cheap); a job or spider
key is drawn as an index into the keys the model knows at that moment (removed jobs
included) plus keys that never existed. A failing example prints its steps as jobq saw
them (hypothesis `note`), shrunk to a minimal sequence.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from jobq import errors
from jobq.core.credentials import JobTokens, Principal
from jobq.core.queue import JobQueue, ListRequest, plain
from jobq.domain.jobs import JobKey, State
from jobq.storage import open_storage
from jobq.storage.base import Storage
from tests.property import model as m

ADMIN = Principal(name="admin", is_admin=True)
PROJECTS = (1, 2)
SPIDERS = ("a", "b", "c")
TAGS = ("x", "y", "z")
UNIQUES = ("u1", "u2")
#: metadata fields a read may ask for with `jobmeta` (the last one never exists)
JOBMETA = (
    "spider", "priority", "units", "tags", "note", "close_reason", "state", "project",
    "scheduled_by", "started_by", "completed_by", "deleted_by", "cancelled_by", "worker",
    "_shub_worker", "pending_time", "running_time", "finished_time", "deleted_time",
    "cancel_requested_time", "nothing",
)
MAX_STEPS = 40
SQLITE_EXAMPLES = int(os.environ.get("JOBQ_PROPERTY_EXAMPLES_SQLITE", "100"))
POSTGRES_EXAMPLES = int(os.environ.get("JOBQ_PROPERTY_EXAMPLES_POSTGRES", "40"))

#: pytest-timeout for a test: generating (< 1 minute) plus shrinking a failure (5 minutes)
SHRINK_TIMEOUT = 600
COMMON_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "print_blob": True,
}


def state(label: str) -> State:
    return State[label.upper()]


# -- checking rows against the model ------------------------------------------------------


@dataclass
class TimeBook:
    """Every time a row showed, by (job key, state), with the model tick of that entry."""

    seen: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def see(self, job: m.Job, entered: str, ts: Any, where: str) -> None:
        assert isinstance(ts, int) and not isinstance(ts, bool), f"{where}: ts {ts!r}"
        tick = job.entered[entered]
        old = self.seen.get((job.key, entered))
        if old is not None:
            assert old[1] == ts, (
                f"{where}: {job.key} entered {entered} at {old[1]}, now shows {ts}"
            )
            return
        project = job.key.split("/")[0]
        for (key, other), (other_tick, other_ts) in self.seen.items():
            if key.split("/")[0] != project:
                continue
            assert (other_tick < tick) <= (other_ts <= ts) and (tick < other_tick) <= (
                ts <= other_ts
            ), (
                f"{where}: {job.key} entered {entered} after {key} entered {other}"
                if other_tick < tick else f"{where}: {job.key} entered {entered} before"
                f" {key} entered {other}",
                f"but has time {ts} vs {other_ts}",
            )
        self.seen[(job.key, entered)] = (tick, ts)


def check_row(row: dict[str, Any], job: m.Job, jobmeta: tuple[str, ...] | None,
              book: TimeBook, where: str) -> None:
    where = f"{where}, row {job.key}"
    expected = {"key", "ts", "state", "elapsed"}
    if job.tags:
        expected.add("tags")
    meta = job.full_meta()
    times = job.time_fields()
    if jobmeta is None:
        expected |= {"spider"} | {f"{s}_time" for s in job.entered}
    else:
        expected |= {f for f in jobmeta if f in meta or f in times}
    assert set(row) == expected, f"{where}: fields {sorted(row)}, expected {sorted(expected)}"
    assert row["key"] == job.key and row["state"] == job.state, f"{where}: {row}"
    assert isinstance(row["elapsed"], int), f"{where}: elapsed {row['elapsed']!r}"
    book.see(job, job.state, row["ts"], where)
    if jobmeta is None:
        assert row["spider"] == job.spider, f"{where}: {row}"
        if job.tags:
            assert row["tags"] == job.tags, f"{where}: tags {row['tags']} != {job.tags}"
        for entered in job.entered:
            book.see(job, entered, row[f"{entered}_time"], where)
        return
    if job.tags and "tags" not in jobmeta:
        assert row["tags"] == job.tags, f"{where}: tags {row['tags']} != {job.tags}"
    for name in jobmeta:
        if name in meta:
            assert row[name] == meta[name], f"{where}: {name} = {row[name]!r} != {meta[name]!r}"
        elif name in times:
            if name.endswith("_time") and name[:-5] in job.entered:
                book.see(job, name[:-5], row[name], where)
            else:
                assert isinstance(row[name], int), f"{where}: {name} = {row[name]!r}"


def check_rows(rows: list[dict[str, Any]], jobs: list[m.Job],
               jobmeta: tuple[str, ...] | None, book: TimeBook, where: str,
               ordered: bool = True) -> None:
    got = [r.get("key") for r in rows]
    want = [j.key for j in jobs]
    assert got == want, f"{where}: keys {got}, model {want}"
    for row, job in zip(rows, jobs, strict=True):
        check_row(row, job, jobmeta, book, where)
    if ordered:
        stamps = [r["ts"] for r in rows]
        assert stamps == sorted(stamps, reverse=True), f"{where}: ts not newest first {stamps}"


# -- what a step is made of -----------------------------------------------------------------

#: an index into the keys the model knows at the time of the step (see `Run.job_key`)
KEY_INDEX = st.integers(0, 40)
#: from this index on, a key that never existed
UNKNOWN_INDEX = 39
MAYBE_COUNT = st.none() | st.integers(0, 6)
START = st.just(0) | st.integers(1, 3)
MAYBE_JOBMETA = st.none() | st.lists(st.sampled_from(JOBMETA), max_size=3, unique=True).map(
    tuple
)


def tag_lists(min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(TAGS), min_size=min_size, max_size=2, unique=True)


PUSH_LINES = st.fixed_dictionaries(
    {"spider": st.sampled_from(SPIDERS)},
    optional={
        "priority": st.integers(0, 4),
        # finished twice: the default queue of `list` deserves some jobs
        "state": st.sampled_from((*m.STATES, "finished")),
        "unique": st.sampled_from(UNIQUES),
        "tags": tag_lists(min_size=1),
        "note": st.integers(0, 9),
    },
)
#: ("job", index) or ("spider", index): resolved by `Run.target`
TARGETS = st.tuples(st.just("job"), KEY_INDEX) | st.tuples(st.just("spider"), KEY_INDEX)
UPDATE_LINES = st.fixed_dictionaries(
    {"key": TARGETS},
    optional={
        "state": st.sampled_from(m.STATES),
        "note": st.integers(0, 9),
        "tags": tag_lists(),
        "close_reason": st.sampled_from(("finished", "failed")),
    },
)
PROJECT = st.sampled_from(PROJECTS)
OPS = st.one_of(
    st.tuples(st.just("push"), PROJECT, st.lists(PUSH_LINES, min_size=1, max_size=3)),
    # startjob's parameters are merged into the metadata: tags too
    st.tuples(st.just("start"), PROJECT, st.sampled_from(
        ({}, {"worker": "w1"}, {"tags": ["x", "z"]}, {"tags": []}))),
    st.tuples(st.just("update"), PROJECT, st.lists(UPDATE_LINES, min_size=1, max_size=3)),
    st.tuples(st.just("cancel"), PROJECT, st.integers(1, 3) | st.lists(KEY_INDEX, max_size=3)),
    st.tuples(st.just("delete"), PROJECT, TARGETS),
    st.tuples(st.just("remove"), PROJECT, KEY_INDEX),
    st.tuples(st.just("meta"), PROJECT, st.tuples(KEY_INDEX, st.fixed_dictionaries(
        {}, optional={"tags": tag_lists(), "note": st.integers(0, 9)}
    ) | st.sampled_from(("tags", "note", "close_reason", "priority")))),
)


def few(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    """Often no filter at all, else one or two values (repeats allowed, as in a URL)."""
    return st.just(()) | st.lists(st.sampled_from(values), min_size=1, max_size=2).map(tuple)


FILTERS = st.fixed_dictionaries({
    "states": st.lists(st.sampled_from(m.LISTABLE), max_size=3).map(
        lambda states: tuple(dict.fromkeys(states)) or ("finished",)
    ),
    "spiders": few((*SPIDERS, "zz")),
    "has_tags": few(TAGS),
    "lacks_tags": few(TAGS),
})
READS = st.fixed_dictionaries({
    "project": PROJECT,
    "list": st.fixed_dictionaries({
        "filters": FILTERS, "stop": st.none() | KEY_INDEX, "count": MAYBE_COUNT,
        "start": START, "jobmeta": MAYBE_JOBMETA,
    }),
    "count": FILTERS,
    "summary": st.fixed_dictionaries({
        "spider": st.none() | KEY_INDEX, "state": st.none() | st.sampled_from(m.LISTABLE),
        "count": MAYBE_COUNT, "start": START, "jobmeta": MAYBE_JOBMETA,
    }),
    "jobsummary": st.fixed_dictionaries({
        "keys": st.lists(KEY_INDEX, max_size=3),
        "jobmeta": st.lists(st.sampled_from(JOBMETA), max_size=3, unique=True),
    }),
})
#: a step: one write, then random reads (besides the full check after every step). Lists
#: of lists: a plain `st.lists` mostly makes short sequences; this still shrinks well.
STEPS = st.lists(
    st.lists(st.tuples(OPS, READS), min_size=1, max_size=10), min_size=1, max_size=6
).map(lambda chunks: [step for chunk in chunks for step in chunk][:MAX_STEPS])


@dataclass
class Run:
    """One example: the steps against jobq and the model side by side."""

    queue: JobQueue
    model: m.Model = field(default_factory=m.Model)
    book: TimeBook = field(default_factory=TimeBook)
    step: int = 0

    def job_key(self, pid: int, index: int) -> str:
        """The index-th key the model knows (removed jobs included), or one that never
        existed for the largest indices (or while there is none)."""
        known = self.model.keys(pid)
        if index >= UNKNOWN_INDEX or not known:
            return f"{pid}/9/1" if index % 2 else f"{pid}/1/99"
        return known[index % len(known)]

    def stop_key(self, pid: int, index: int, states: tuple[str, ...]) -> str:
        """Mostly a key whose job entered one of the listed queues (a real cursor)."""
        entered = [job.key for job in self.model.project(pid).jobs.values()
                   if any(s in job.entered for s in states)]
        if index >= UNKNOWN_INDEX - 2 or not entered:
            return self.job_key(pid, index)
        return entered[index % len(entered)]

    def spider_id(self, pid: int, index: int) -> int:
        known = [*self.model.spider_ids(pid), 9]
        return known[index % len(known)]

    def target(self, pid: int, target: tuple[str, int]) -> str:
        kind, index = target
        if kind == "job":
            return self.job_key(pid, index)
        return f"{pid}/{self.spider_id(pid, index)}"

    async def run(self, steps: list[tuple[Any, dict[str, Any]]]) -> None:
        for self.step, (op, reads) in enumerate(steps, 1):
            await self.write(*op)
            await self.check_everything()
            await self.check_reads(reads)

    # -- writes ----------------------------------------------------------------------

    async def write(self, op: str, pid: int, args: Any) -> None:
        where = f"step {self.step}: {op} in project {pid}"
        if op == "push":
            lines = [dict(line) for line in args]
            note(f"{where}: push {lines}")
            got = await self.queue.push(ADMIN, pid, [dict(line) for line in lines])
            want = self.model.push(pid, lines, ADMIN.name)
            for answer in got:
                if "auth" in answer:
                    answer["running"] = answer.pop("auth") is not None
            assert got == want, f"{where}: answered {got}, model {want}"
            if any("error" in answer for answer in want):
                event("push: duplicate unique refused")
        elif op == "start":
            params = dict(args)
            note(f"{where}: startjob {params}")
            claimed = await self.queue.start(ADMIN, pid, dict(params))
            job = self.model.start(pid, params, ADMIN.name)
            if job is None:
                assert claimed is None, f"{where}: claimed {claimed}, model: nothing pending"
                return
            assert claimed is not None, f"{where}: nothing claimed, model {job.key}"
            assert claimed["key"] == job.key, f"{where}: claimed {claimed['key']}, model {job.key}"
            assert isinstance(claimed["auth"], str)
            assert claimed["state"] == "running" and claimed["spider"] == job.spider
            assert claimed.get("priority") == job.meta.get("priority"), f"{where}: {claimed}"
            assert claimed.get("worker") == params.get("worker"), f"{where}: {claimed}"
            for entered in job.entered:
                self.book.see(job, entered, claimed[f"{entered}_time"], where)
        elif op in ("update", "delete"):
            if op == "update":
                lines = [{**line, "key": self.target(pid, line["key"])} for line in args]
            else:
                lines = [{"key": self.target(pid, args), "state": "deleted"}]
            note(f"{where}: update {lines}")
            try:
                want: Any = self.model.update(pid, lines, ADMIN.name)
            except m.Conflict as exc:
                want = exc
            try:
                got: Any = await self.queue.update(ADMIN, pid, [dict(line) for line in lines])
            except errors.Conflict as exc:
                got = exc
            event(f"{op}: " + ("conflict" if isinstance(want, m.Conflict)
                                else f"{min(len(want), 2)}+ jobs changed"))
            if isinstance(want, m.Conflict):
                assert isinstance(got, errors.Conflict), (
                    f"{where}: answered {got}, model: Conflict ({want})"
                )
            else:
                assert got == want, f"{where}: answered {got}, model {want}"
        elif op == "cancel":
            if isinstance(args, int):
                note(f"{where}: cancel?count={args}")
                got = await self.queue.cancel(ADMIN, pid, None, args)
                want = self.model.cancel(pid, None, args, ADMIN.name)
            else:
                keys = [self.job_key(pid, i) for i in args]
                note(f"{where}: cancel {keys}")
                got = await self.queue.cancel(ADMIN, pid, [{"key": k} for k in keys], None)
                want = self.model.cancel(pid, keys, None, ADMIN.name)
            assert got == want, f"{where}: cancelled {got}, model {want}"
            event(f"cancel: {min(want, 2)}+ cancelled")
        elif op == "meta":
            index, change = args
            key = self.job_key(pid, index)
            try:
                if isinstance(change, str):
                    note(f"{where}: DELETE jobs/{key}/{change}")
                    self.model.delete_meta_field(pid, key, change)
                else:
                    note(f"{where}: POST jobs/{key} {change}")
                    self.model.set_meta(pid, key, change)
                want = None
            except m.NotFound as exc:
                want = exc
            try:
                if isinstance(change, str):
                    await self.queue.delete_job_meta_field(ADMIN, JobKey.parse(key), change)
                else:
                    await self.queue.set_job_meta(ADMIN, JobKey.parse(key), [dict(change)])
                got = None
            except errors.NotFound as exc:
                got = exc
            assert (got is None) == (want is None), f"{where}: jobq {got!r}, model {want!r}"
        else:
            key = self.job_key(pid, args)
            note(f"{where}: DELETE jobs/{key}")
            try:
                self.model.remove(pid, key)
                want = None
            except m.NotFound as exc:
                want = exc
            try:
                await self.queue.remove_job(ADMIN, JobKey.parse(key))
                got = None
            except errors.NotFound as exc:
                got = exc
            assert (got is None) == (want is None), f"{where}: jobq {got!r}, model {want!r}"
            event(f"remove: {'removed' if want is None else 'not found'}")

    # -- reads -----------------------------------------------------------------------

    async def check_everything(self) -> None:
        """Unfiltered reads of every project after every step: all queues, every count."""
        for pid in PROJECTS:
            where = f"after step {self.step}: project {pid}"
            rows = plain(await self.queue.list_page(ADMIN, pid, ListRequest(states=(
                State.PENDING, State.RUNNING, State.FINISHED))))
            check_rows(rows, self.model.list(pid, m.LISTABLE), None, self.book,
                       f"{where}: list of all queues")
            for spider in (None, *self.model.spider_ids(pid)):
                got = await self.queue.summary(ADMIN, pid, spider, None, ListRequest())
                want = self.model.summary(pid, spider, None)
                assert [(q["name"], q["count"]) for q in got] == [
                    (name, n) for name, n, _ in want
                ], f"{where}: summary of spider {spider}: {got}"
                for queue, (name, _, jobs) in zip(got, want, strict=True):
                    check_rows(plain(queue["summary"]), jobs, None, self.book,
                               f"{where}: summary of spider {spider}, {name}")
            await self.check_tag_counts(pid, where)

    async def check_tag_counts(self, pid: int, where: str) -> None:
        """Counts of one tag to have or to lack (read from the counts kept per tag) of
        every tag, queue, and spider, equal the model's."""
        reads = [((s,), ()) for s in m.LISTABLE] + [(m.LISTABLE, (s,)) for s in SPIDERS]
        for tag in TAGS:
            for states, spider in reads:
                for has, lacks in (((tag,), ()), ((), (tag,))):
                    req = ListRequest(states=tuple(state(s) for s in states),
                                      spiders=spider, has_tags=has, lacks_tags=lacks)
                    n = await self.queue.count(ADMIN, pid, req)
                    want = self.model.count(pid, states, spider, has, lacks)
                    assert n == want, (f"{where}: count {states} spider={spider}"
                                       f" has_tag={has} lacks_tag={lacks} = {n}, model {want}")

    async def check_reads(self, reads: dict[str, Any]) -> None:
        pid = reads["project"]
        where = f"after step {self.step}: project {pid}"

        # list
        args = reads["list"]
        f = args["filters"]
        stop = None if args["stop"] is None else self.stop_key(pid, args["stop"], f["states"])
        count, start, jobmeta = args["count"], args["start"], args["jobmeta"]
        req = ListRequest(
            states=tuple(state(s) for s in f["states"]), spiders=f["spiders"],
            has_tags=f["has_tags"], lacks_tags=f["lacks_tags"],
            stop=JobKey.parse(stop) if stop else None, count=count, start=start,
            jobmeta=jobmeta,
        )
        what = f"{where}: list {f} stop={stop} count={count} start={start} jobmeta={jobmeta}"
        try:
            want: Any = self.model.list(pid, **f, stop=stop, count=count, start=start)
        except m.BadRequest as exc:
            want = exc
        try:
            # as served: plain rows built by the database, jobmeta ones in Python
            got: Any = plain(await self.queue.list_page(ADMIN, pid, req))
        except errors.BadRequest as exc:
            got = exc
        if isinstance(want, m.BadRequest) or isinstance(got, errors.BadRequest):
            assert isinstance(want, m.BadRequest) and isinstance(got, errors.BadRequest), (
                f"{what}: jobq {got!r}, model {want!r}"
            )
        else:
            check_rows(got, want, jobmeta, self.book, what)
        if stop is not None:
            event("list with stop: " + ("refused" if isinstance(want, m.BadRequest)
                                        else f"{min(len(want), 2)}+ rows"))

        # count
        f = reads["count"]
        req = ListRequest(
            states=tuple(state(s) for s in f["states"]), spiders=f["spiders"],
            has_tags=f["has_tags"], lacks_tags=f["lacks_tags"],
        )
        n = await self.queue.count(ADMIN, pid, req)
        assert n == self.model.count(pid, **f), f"{where}: count {f} = {n}"

        # summary
        args = reads["summary"]
        spider = None if args["spider"] is None else self.spider_id(pid, args["spider"])
        queue_state, count, start, jobmeta = (
            args["state"], args["count"], args["start"], args["jobmeta"]
        )
        what = (f"{where}: summary spider={spider} state={queue_state} count={count}"
                f" start={start} jobmeta={jobmeta}")
        got = await self.queue.summary(
            ADMIN, pid, spider, state(queue_state) if queue_state else None,
            ListRequest(count=count, start=start, jobmeta=jobmeta),
        )
        want = self.model.summary(pid, spider, queue_state, count, start)
        assert [(q["name"], q["count"]) for q in got] == [
            (name, n) for name, n, _ in want
        ], f"{what}: {got}"
        for queue, (name, _, jobs) in zip(got, want, strict=True):
            check_rows(plain(queue["summary"]), jobs, jobmeta, self.book, f"{what}: {name}")

        # jobsummary
        keys = [self.job_key(pid, i) for i in reads["jobsummary"]["keys"]]
        jobmeta = reads["jobsummary"]["jobmeta"]
        what = f"{where}: jobsummary {keys} jobmeta={jobmeta}"
        rows = await self.queue.jobsummary(
            ADMIN, pid, [JobKey.parse(k) for k in keys], jobmeta
        )
        check_rows(rows, self.model.jobsummary(pid, keys), tuple(jobmeta), self.book, what,
                   ordered=False)


async def run_example(
    url: str, steps: list[tuple[Any, dict[str, Any]]], **options: object
) -> None:
    storage: Storage = open_storage(url, **options)
    await storage.open()
    try:
        queue = JobQueue(storage, JobTokens("property-test-job-token-secret-0123456789"),
                         max_count=100_000)
        await Run(queue).run(steps)
    finally:
        await storage.close()


# -- the tests -------------------------------------------------------------------------------


#: a failing example is shrunk for up to 5 minutes (hypothesis' own limit) before it is shown
@pytest.mark.timeout(SHRINK_TIMEOUT)
@settings(max_examples=SQLITE_EXAMPLES, **COMMON_SETTINGS)
@given(steps=STEPS)
def test_jobq_matches_the_model_sqlite(
    tmp_path: Path, steps: list[tuple[Any, dict[str, Any]]]
) -> None:
    path = tmp_path / f"jobq-{uuid.uuid4().hex[:8]}.sqlite3"
    try:
        # the rules are under test here, not durability: commits need not wait for fsync
        asyncio.run(run_example(f"sqlite:///{path}", steps, synchronous="NORMAL"))
    finally:
        for leftover in tmp_path.glob(path.name + "*"):
            leftover.unlink()


def empty_pg_database(url: str) -> None:
    """TRUNCATE every jobq table (cheaper than a new database per example)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'jobq'"
                " AND tablename <> 'jobq_schema_version'"
            )
        ]
        if tables:
            names = ", ".join(f'jobq."{t}"' for t in tables)
            conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]


@pytest.mark.postgres
@pytest.mark.timeout(SHRINK_TIMEOUT)
@settings(max_examples=POSTGRES_EXAMPLES, **COMMON_SETTINGS)
@given(steps=STEPS)
def test_jobq_matches_the_model_postgres(
    pg_url: str, steps: list[tuple[Any, dict[str, Any]]]
) -> None:
    empty_pg_database(pg_url)
    asyncio.run(run_example(pg_url, steps))
