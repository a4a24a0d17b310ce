-- jobq schema, version 1 (PostgreSQL).
-- Every table is keyed by project_id first (except the global api_keys, secrets and
-- botgroups), so that Citus can distribute the per-project tables by project_id.
-- States: 0 pending, 1 running, 2 finished, 3 deleted, 4 removed (tombstone of
-- DELETE jobs/K). JSON documents (meta, settings, tags) are stored as text: jsonb would
-- reorder keys, and GET answers must be byte-identical to the SQLite backend.

CREATE TABLE projects (
    project_id bigint PRIMARY KEY,
    -- highest queue position handed out in this project (see jobq/core/jobs.py); every
    -- write of the project locks this row first and holds it until commit
    last_position bigint NOT NULL DEFAULT 0,
    last_spider_id bigint NOT NULL DEFAULT 0,
    settings text NOT NULL DEFAULT '{}'
);

CREATE TABLE spiders (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    name text NOT NULL,
    last_job_no bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, spider_id),
    UNIQUE (project_id, name)
);

CREATE TABLE jobs (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    job_no bigint NOT NULL,
    state smallint NOT NULL,
    -- position of the current state; the entry position of each state the job had
    position bigint NOT NULL,
    pending_position bigint,
    running_position bigint,
    finished_position bigint,
    deleted_position bigint,
    priority smallint NOT NULL,
    unique_key text,
    tags text,   -- JSON array, NULL when the job has no tags
    meta text NOT NULL,
    PRIMARY KEY (project_id, spider_id, job_no)
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
    project_id bigint NOT NULL,
    tag text NOT NULL,
    spider_id bigint NOT NULL,
    job_no bigint NOT NULL,
    PRIMARY KEY (project_id, tag, spider_id, job_no)
);

-- jobs per (project, spider, state), kept by triggers so counts never scan jobs
CREATE TABLE state_counts (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    state smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (project_id, spider_id, state)
);

-- a push inserts many rows in one statement: count and tag them per statement
CREATE FUNCTION jobq_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO state_counts (project_id, spider_id, state, n)
    SELECT project_id, spider_id, state, count(*) FROM new_jobs
    GROUP BY project_id, spider_id, state
    ON CONFLICT (project_id, spider_id, state) DO UPDATE SET n = state_counts.n + EXCLUDED.n;
    INSERT INTO job_tags (project_id, tag, spider_id, job_no)
    SELECT j.project_id, t.tag, j.spider_id, j.job_no
    FROM new_jobs j CROSS JOIN LATERAL json_array_elements_text(j.tags::json) AS t(tag)
    WHERE j.tags IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobq_jobs_inserted();

CREATE FUNCTION jobq_job_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE state_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id AND state = OLD.state;
    INSERT INTO state_counts (project_id, spider_id, state, n)
    VALUES (NEW.project_id, NEW.spider_id, NEW.state, 1)
    ON CONFLICT (project_id, spider_id, state) DO UPDATE SET n = state_counts.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state <> NEW.state)
    EXECUTE FUNCTION jobq_job_state_changed();

CREATE FUNCTION jobq_job_tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.tags IS NOT NULL THEN
        DELETE FROM job_tags
        WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id
            AND job_no = OLD.job_no
            AND tag IN (SELECT json_array_elements_text(OLD.tags::json));
    END IF;
    IF NEW.tags IS NOT NULL THEN
        INSERT INTO job_tags (project_id, tag, spider_id, job_no)
        SELECT NEW.project_id, t.tag, NEW.spider_id, NEW.job_no
        FROM json_array_elements_text(NEW.tags::json) AS t(tag)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_tags_update AFTER UPDATE OF tags ON jobs
    FOR EACH ROW WHEN (OLD.tags IS DISTINCT FROM NEW.tags)
    EXECUTE FUNCTION jobq_job_tags_changed();

-- a project joins botgroups through its `botgroups` setting
CREATE TABLE project_botgroups (
    project_id bigint NOT NULL,
    botgroup text NOT NULL,
    PRIMARY KEY (project_id, botgroup)
);
CREATE INDEX project_botgroups_by_group ON project_botgroups (botgroup, project_id);

CREATE TABLE botgroups (
    botgroup text PRIMARY KEY,
    max_running bigint
);

CREATE TABLE api_keys (
    key_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,
    name text NOT NULL,
    project_id bigint,  -- NULL: an admin key
    created_ms bigint NOT NULL,
    revoked_ms bigint
);

CREATE TABLE secrets (
    name text PRIMARY KEY,
    value text NOT NULL
);
