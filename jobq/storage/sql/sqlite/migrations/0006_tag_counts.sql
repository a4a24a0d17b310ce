-- jobq schema, version 6 (SQLite): jobs per (project, tag, spider, state), kept by
-- triggers, so that `count?has_tag=T` (and `lacks_tag=T`, as the state count less it)
-- reads a few rows instead of every job having the tag. A job counts once per distinct
-- tag (job_tags holds one row per tag, too). Rows that reach 0 stay: re-deleting them on
-- every write would cost more than the few rows they take.
CREATE TABLE tag_counts (
    project_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    spider_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (project_id, tag, spider_id, state)
) WITHOUT ROWID;

-- the jobs stored so far (job_tags already holds their distinct tags)
INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
SELECT t.project_id, t.tag, t.spider_id, j.state, count(*)
FROM job_tags t JOIN jobs j
    ON j.project_id = t.project_id AND j.spider_id = t.spider_id AND j.job_no = t.job_no
GROUP BY t.project_id, t.tag, t.spider_id, j.state;

-- (`WHERE true`: an INSERT ... SELECT needs a WHERE before its upsert clause)
CREATE TRIGGER jobs_tag_counts_insert AFTER INSERT ON jobs WHEN NEW.tags IS NOT NULL BEGIN
    INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
    SELECT NEW.project_id, t.value, NEW.spider_id, NEW.state, 1
    FROM (SELECT DISTINCT value FROM json_each(NEW.tags)) t WHERE true
    ON CONFLICT (project_id, tag, spider_id, state) DO UPDATE SET n = n + 1;
END;

-- a change of state or of tags (removal sets both) moves the job's tags between counts
CREATE TRIGGER jobs_tag_counts_update AFTER UPDATE OF state, tags ON jobs
WHEN (OLD.state <> NEW.state OR OLD.tags IS NOT NEW.tags)
    AND (OLD.tags IS NOT NULL OR NEW.tags IS NOT NULL) BEGIN
    UPDATE tag_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND spider_id = OLD.spider_id AND state = OLD.state
        AND OLD.tags IS NOT NULL AND tag IN (SELECT value FROM json_each(OLD.tags));
    INSERT INTO tag_counts (project_id, tag, spider_id, state, n)
    SELECT NEW.project_id, t.value, NEW.spider_id, NEW.state, 1
    FROM (SELECT DISTINCT value FROM json_each(NEW.tags)) t WHERE NEW.tags IS NOT NULL
    ON CONFLICT (project_id, tag, spider_id, state) DO UPDATE SET n = n + 1;
END;
