-- jobq schema, version 6 (PostgreSQL): jobs per (project, tag, spider, state), kept by
-- triggers, so that `count?has_tag=T` (and `lacks_tag=T`, as the state count less it)
-- reads a few rows instead of every job having the tag. A job counts once per distinct
-- tag (job_tags holds one row per tag, too). Rows that reach 0 stay: re-deleting them on
-- every write would cost more than the few rows they take. Every write of a project
-- locks its project row first, so the upserts of one project never race.
CREATE TABLE tag_counts (
    project_id bigint NOT NULL,
    tag text NOT NULL,
    spider_id bigint NOT NULL,
    state smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (project_id, tag, spider_id, state)
);

-- the jobs stored so far (job_tags already holds their distinct tags)
INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
SELECT t.project_id, t.tag, t.spider_id, j.state, count(*)
FROM job_tags t JOIN jobs j
    ON j.project_id = t.project_id AND j.spider_id = t.spider_id AND j.job_no = t.job_no
GROUP BY t.project_id, t.tag, t.spider_id, j.state;

-- a push inserts many rows in one statement: count them per statement
CREATE FUNCTION jobq_tag_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
    SELECT j.project_id, t.tag, j.spider_id, j.state, count(*)
    FROM new_jobs j CROSS JOIN LATERAL (
        SELECT DISTINCT e.tag FROM json_array_elements_text(j.tags::json) AS e(tag)) t
    WHERE j.tags IS NOT NULL
    GROUP BY j.project_id, t.tag, j.spider_id, j.state
    ON CONFLICT (project_id, tag, spider_id, state)
        DO UPDATE SET n = tag_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_tag_counts_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobq_tag_counts_inserted();

-- a change of state or of tags (removal sets both) moves the job's tags between counts
CREATE FUNCTION jobq_tag_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.tags IS NOT NULL THEN
        UPDATE tag_counts SET n = n - 1
        WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id
            AND state = OLD.state
            AND tag IN (SELECT json_array_elements_text(OLD.tags::json));
    END IF;
    IF NEW.tags IS NOT NULL THEN
        INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
        SELECT DISTINCT NEW.project_id, e.tag, NEW.spider_id, NEW.state, 1::bigint
        FROM json_array_elements_text(NEW.tags::json) AS e(tag)
        ON CONFLICT (project_id, tag, spider_id, state)
            DO UPDATE SET n = tag_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_tag_counts_update AFTER UPDATE OF state, tags ON jobs
    FOR EACH ROW WHEN ((OLD.state <> NEW.state OR OLD.tags IS DISTINCT FROM NEW.tags)
        AND (OLD.tags IS NOT NULL OR NEW.tags IS NOT NULL))
    EXECUTE FUNCTION jobq_tag_counts_changed();
