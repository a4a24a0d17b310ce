-- jobq schema, version 1 (SQLite).
-- Every table is keyed by project_id first. States: 0 pending, 1 running,
-- 2 finished, 3 deleted, 4 removed (tombstone of DELETE jobs/K).

CREATE TABLE projects (
    project_id INTEGER PRIMARY KEY,
    -- highest queue position handed out in this project (see jobq/core/jobs.py)
    last_position INTEGER NOT NULL DEFAULT 0,
    last_spider_id INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE spiders (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    last_job_no INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, spider_id),
    UNIQUE (project_id, name)
) WITHOUT ROWID;

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    job_no INTEGER NOT NULL,
    state INTEGER NOT NULL,
    -- position of the current state; the entry position of each state the job had
    position INTEGER NOT NULL,
    pending_position INTEGER,
    running_position INTEGER,
    finished_position INTEGER,
    deleted_position INTEGER,
    priority INTEGER NOT NULL,
    unique_key TEXT,
    tags TEXT,   -- JSON array, NULL when the job has no tags
    meta TEXT NOT NULL,
    UNIQUE (project_id, spider_id, job_no)
);
-- list / stop / startts / endts / count of one queue, newest first
CREATE INDEX jobs_queue ON jobs (project_id, state, position);
-- the same for one spider
CREATE INDEX jobs_spider_queue ON jobs (project_id, spider_id, state, position);
-- startjob: highest priority, then oldest
CREATE INDEX jobs_claim ON jobs (project_id, priority DESC, position) WHERE state = 0;
-- one active job per unique value
CREATE UNIQUE INDEX jobs_active_unique ON jobs (project_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1);

CREATE TABLE job_tags (
    project_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    spider_id INTEGER NOT NULL,
    job_no INTEGER NOT NULL,
    PRIMARY KEY (project_id, tag, spider_id, job_no)
) WITHOUT ROWID;

-- jobs per (project, spider, state), so counts never scan jobs: push adds its jobs in
-- one statement per (spider, state); a trigger follows every change of state
CREATE TABLE state_counts (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (project_id, spider_id, state)
) WITHOUT ROWID;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id AND state = OLD.state;
    INSERT INTO state_counts (project_id, spider_id, state, n)
    VALUES (NEW.project_id, NEW.spider_id, NEW.state, 1)
    ON CONFLICT (project_id, spider_id, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_tags_insert AFTER INSERT ON jobs WHEN NEW.tags IS NOT NULL BEGIN
    INSERT OR IGNORE INTO job_tags (project_id, tag, spider_id, job_no)
    SELECT NEW.project_id, value, NEW.spider_id, NEW.job_no FROM json_each(NEW.tags);
END;

CREATE TRIGGER jobs_tags_update AFTER UPDATE OF tags ON jobs
WHEN OLD.tags IS NOT NEW.tags BEGIN
    DELETE FROM job_tags WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id
        AND job_no = OLD.job_no AND OLD.tags IS NOT NULL
        AND tag IN (SELECT value FROM json_each(OLD.tags));
    INSERT OR IGNORE INTO job_tags (project_id, tag, spider_id, job_no)
    SELECT NEW.project_id, value, NEW.spider_id, NEW.job_no FROM json_each(NEW.tags)
    WHERE NEW.tags IS NOT NULL;
END;

-- a project joins botgroups through its `botgroups` setting
CREATE TABLE project_botgroups (
    project_id INTEGER NOT NULL,
    botgroup TEXT NOT NULL,
    PRIMARY KEY (project_id, botgroup)
) WITHOUT ROWID;
CREATE INDEX project_botgroups_by_group ON project_botgroups (botgroup, project_id);

CREATE TABLE botgroups (
    botgroup TEXT PRIMARY KEY,
    max_running INTEGER
) WITHOUT ROWID;

CREATE TABLE api_keys (
    key_id INTEGER PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    project_id INTEGER,  -- NULL: an admin key
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
