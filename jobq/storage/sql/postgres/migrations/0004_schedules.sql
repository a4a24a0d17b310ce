-- Scheduling (issue 13): the app API's spider tags and registered spiders, and
-- periodic jobs. Times are ms since the epoch.

-- spider tags (`v2/projects/:pid/spiders/:sid/tags`)
CREATE TABLE spider_tags (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    tags text NOT NULL,   -- JSON array of strings
    PRIMARY KEY (project_id, spider_id)
);

-- spiders that a worker (or any other source) says it can run, by name
CREATE TABLE registered_spiders (
    project_id bigint NOT NULL,
    name text NOT NULL,
    source text NOT NULL,
    registered_ms bigint NOT NULL,
    PRIMARY KEY (project_id, name, source)
);

CREATE TABLE schedules (
    schedule_id bigserial PRIMARY KEY,
    project_id bigint NOT NULL,
    spec text NOT NULL,   -- JSON: jobq.domain.schedules.ScheduleSpec
    paused boolean NOT NULL DEFAULT false,
    -- the first tick not yet handled; a node fires it only if this is still the value it
    -- read (compare-and-set in the transaction of the push)
    next_tick_ms bigint,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    last_tick_ms bigint,
    last_job text,
    last_outcome text,
    last_fired_ms bigint
);
CREATE INDEX schedules_due ON schedules (next_tick_ms) WHERE NOT paused;
CREATE INDEX schedules_by_project ON schedules (project_id, schedule_id);

-- one row per tick handled: the primary key makes a second push of a tick impossible
CREATE TABLE schedule_ticks (
    schedule_id bigint NOT NULL,
    tick_ms bigint NOT NULL,
    fired_ms bigint NOT NULL,
    job text,             -- the job pushed; NULL when the tick was skipped
    outcome text NOT NULL,
    PRIMARY KEY (schedule_id, tick_ms)
);
