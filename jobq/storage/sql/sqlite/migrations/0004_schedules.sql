-- Scheduling (issue 13): the app API's spider tags and registered spiders, and
-- periodic jobs. Times are ms since the epoch.

-- spider tags (`v2/projects/:pid/spiders/:sid/tags`)
CREATE TABLE spider_tags (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    tags TEXT NOT NULL,   -- JSON array of strings
    PRIMARY KEY (project_id, spider_id)
) WITHOUT ROWID;

-- spiders that a worker (or any other source) says it can run, by name
CREATE TABLE registered_spiders (
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    registered_ms INTEGER NOT NULL,
    PRIMARY KEY (project_id, name, source)
) WITHOUT ROWID;

CREATE TABLE schedules (
    schedule_id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    spec TEXT NOT NULL,   -- JSON: jobq.domain.schedules.ScheduleSpec
    paused INTEGER NOT NULL DEFAULT 0,
    -- the first tick not yet handled; a node fires it only if this is still the value it
    -- read (compare-and-set in the transaction of the push)
    next_tick_ms INTEGER,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    last_tick_ms INTEGER,
    last_job TEXT,
    last_outcome TEXT,
    last_fired_ms INTEGER
);
CREATE INDEX schedules_due ON schedules (next_tick_ms) WHERE paused = 0;
CREATE INDEX schedules_by_project ON schedules (project_id, schedule_id);

-- one row per tick handled: the primary key makes a second push of a tick impossible
CREATE TABLE schedule_ticks (
    schedule_id INTEGER NOT NULL,
    tick_ms INTEGER NOT NULL,
    fired_ms INTEGER NOT NULL,
    job TEXT,             -- the job pushed; NULL when the tick was skipped
    outcome TEXT NOT NULL,
    PRIMARY KEY (schedule_id, tick_ms)
) WITHOUT ROWID;
