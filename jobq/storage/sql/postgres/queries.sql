-- Named queries of the PostgreSQL backend, parsed once into a dict by
-- `jobq.storage._pg_sql.load_queries` (one `-- name: NAME` header per query).
-- Parameters are psycopg's `%(name)s`. The queries of `list` and `count` are assembled
-- from the `list_*` fragments in `_pg_read`, because their filters vary.

-- ------------------------------------------------------------------ locking, positions

-- name: lock_project_ensure
-- Create the project row if needed and lock it until commit: every write of a project
-- starts here, so the writes of one project serialize and positions follow commit order.
INSERT INTO projects AS p (project_id) VALUES (%(project)s)
ON CONFLICT (project_id) DO UPDATE SET last_position = p.last_position
RETURNING last_position;

-- name: save_position
UPDATE projects SET last_position = %(position)s WHERE project_id = %(project)s;

-- name: advance_positions_ensure
-- A late-locking batch (see postgres.py): lock the project row (creating it if needed)
-- only now, at the end, and take `n` positions at once (the first one is
-- next_position(last, now), the others follow it); returns the first. With n = 0 the
-- row is only locked.
INSERT INTO projects AS p (project_id, last_position)
VALUES (%(project)s, CASE WHEN %(n)s::bigint = 0 THEN 0
                          ELSE %(floor)s::bigint + %(n)s::bigint - 1 END)
ON CONFLICT (project_id) DO UPDATE SET last_position = CASE WHEN %(n)s::bigint = 0
    THEN p.last_position
    ELSE GREATEST(%(floor)s::bigint, p.last_position + 1) + %(n)s::bigint - 1 END
RETURNING last_position - %(n)s::bigint + 1;

-- name: advance_positions
-- The same for a project row that must exist (it has the jobs being moved).
UPDATE projects p
SET last_position = GREATEST(%(floor)s::bigint, p.last_position + 1) + %(n)s::bigint - 1
WHERE project_id = %(project)s
RETURNING last_position - %(n)s::bigint + 1;

-- name: lock_botgroups
-- startjob: lock the capped botgroups of the project, sorted by name (one global order,
-- so no deadlock), so that max_running holds across nodes.
SELECT b.botgroup FROM botgroups b
WHERE b.max_running IS NOT NULL
  AND b.botgroup IN (SELECT botgroup FROM project_botgroups WHERE project_id = %(project)s)
ORDER BY b.botgroup
FOR UPDATE OF b;

-- ------------------------------------------------------------------ spiders

-- name: spider_by_name
SELECT spider_id FROM spiders WHERE project_id = %(project)s AND name = %(name)s;

-- name: spiders_by_names
SELECT name, spider_id FROM spiders WHERE project_id = %(project)s AND name = ANY(%(names)s);

-- name: spider_names
SELECT spider_id, name FROM spiders
WHERE project_id = %(project)s AND spider_id = ANY(%(ids)s::bigint[]);

-- name: next_spider_id
UPDATE projects SET last_spider_id = last_spider_id + 1 WHERE project_id = %(project)s
RETURNING last_spider_id;

-- name: insert_spider
INSERT INTO spiders (project_id, spider_id, name) VALUES (%(project)s, %(spider)s, %(name)s);

-- name: take_job_numbers
-- Reserve `n` job numbers for each spider in one statement; returns the last one taken.
UPDATE spiders s SET last_job_no = s.last_job_no + v.n
FROM unnest(%(spiders)s::bigint[], %(counts)s::bigint[]) AS v(spider_id, n)
WHERE s.project_id = %(project)s AND s.spider_id = v.spider_id
RETURNING s.spider_id, s.last_job_no;

-- ------------------------------------------------------------------ jobs: writes

-- name: active_with_unique
SELECT unique_key, spider_id, job_no FROM jobs
WHERE project_id = %(project)s AND unique_key = ANY(%(uniques)s) AND state IN (0, 1);

-- name: insert_jobs
INSERT INTO jobs (project_id, spider_id, job_no, state, position, pending_position,
    running_position, finished_position, deleted_position, priority, unique_key, tags, meta,
    counters)
SELECT %(project)s, * FROM unnest(
    %(spider_id)s::bigint[], %(job_no)s::bigint[], %(state)s::smallint[],
    %(position)s::bigint[], %(pending_position)s::bigint[], %(running_position)s::bigint[],
    %(finished_position)s::bigint[], %(deleted_position)s::bigint[], %(priority)s::smallint[],
    %(unique_key)s::text[], %(tags)s::text[], %(meta)s::text[], %(counters)s::text[]);

-- name: claim_job
-- startjob's claim: the next pending job (highest priority, then oldest), locked for
-- this transaction; a job another transaction holds is skipped, never handed out twice.
-- Empty when the project is not in the asked botgroup or a botgroup of it is full.
-- The batch's own writes are sent only at its end (late locking), so the jobs it has
-- already moved are excluded here (%(ex_s)s/%(ex_j)s) and its net change of running jobs
-- (%(running)s) is added to the botgroups' counts. claim_one adds a condition at /* alone */.
SELECT j.spider_id, j.job_no, j.meta, j.pending_position,
    (SELECT name FROM spiders s WHERE s.project_id = j.project_id AND s.spider_id = j.spider_id)
FROM jobs j
WHERE j.project_id = %(project)s AND j.state = 0 /* alone */
  AND (%(botgroup)s::text IS NULL OR EXISTS (
        SELECT 1 FROM project_botgroups
        WHERE project_id = %(project)s AND botgroup = %(botgroup)s::text))
  AND NOT EXISTS (
        SELECT 1 FROM project_botgroups pb JOIN botgroups b ON b.botgroup = pb.botgroup
        WHERE pb.project_id = %(project)s AND b.max_running IS NOT NULL
          AND b.max_running <= %(running)s::bigint + (
            SELECT COALESCE(SUM(sc.n), 0) FROM project_botgroups member
            JOIN state_counts sc ON sc.project_id = member.project_id AND sc.state = 1
            WHERE member.botgroup = pb.botgroup))
  AND (j.spider_id, j.job_no) NOT IN (
        SELECT * FROM unnest(%(ex_s)s::bigint[], %(ex_j)s::bigint[]))
ORDER BY j.priority DESC, j.position
LIMIT 1
FOR UPDATE OF j SKIP LOCKED;

-- name: has_capacity
SELECT NOT EXISTS (
    SELECT 1 FROM project_botgroups pb JOIN botgroups b ON b.botgroup = pb.botgroup
    WHERE pb.project_id = %(project)s AND b.max_running IS NOT NULL
      AND b.max_running <= (
        SELECT COALESCE(SUM(sc.n), 0) FROM project_botgroups member
        JOIN state_counts sc ON sc.project_id = member.project_id AND sc.state = 1
        WHERE member.botgroup = pb.botgroup));

-- name: move_job
-- Write a job's metadata (and the counters kept with it); with a state (and its position) also move it; with
-- tags_changed also its tags.
UPDATE jobs SET
    meta = %(meta)s,
    counters = %(counters)s,
    state = COALESCE(%(state)s::smallint, state),
    position = COALESCE(%(position)s::bigint, position),
    pending_position = CASE WHEN %(state)s::smallint = 0
        THEN %(position)s::bigint ELSE pending_position END,
    running_position = CASE WHEN %(state)s::smallint = 1
        THEN %(position)s::bigint ELSE running_position END,
    finished_position = CASE WHEN %(state)s::smallint = 2
        THEN %(position)s::bigint ELSE finished_position END,
    deleted_position = CASE WHEN %(state)s::smallint = 3
        THEN %(position)s::bigint ELSE deleted_position END,
    tags = CASE WHEN %(tags_changed)s::boolean THEN %(tags)s::text ELSE tags END
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s;

-- name: move_job_late
-- move_job in a late-locking batch: the new position is counted back from the project's
-- last position, which the batch's advance_positions has just set (same transaction).
UPDATE jobs SET
    meta = %(meta)s,
    counters = %(counters)s,
    state = COALESCE(%(state)s::smallint, state),
    position = COALESCE(np.p, position),
    pending_position = CASE WHEN %(state)s::smallint = 0 THEN np.p ELSE pending_position END,
    running_position = CASE WHEN %(state)s::smallint = 1 THEN np.p ELSE running_position END,
    finished_position = CASE WHEN %(state)s::smallint = 2
        THEN np.p ELSE finished_position END,
    deleted_position = CASE WHEN %(state)s::smallint = 3 THEN np.p ELSE deleted_position END,
    tags = CASE WHEN %(tags_changed)s::boolean THEN %(tags)s::text ELSE tags END
FROM (SELECT (SELECT last_position FROM projects WHERE project_id = %(project)s)
             - %(back)s::bigint AS p) AS np
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s;

-- name: claim_one
-- startjob in one statement (one round trip with BEGIN and COMMIT, see postgres.py):
-- the claim of claim_job (pasted at /* claim_job */, with no exclusions: the batch's
-- earlier statements are visible to this one), the project's next position, taken under
-- its row lock only when a job was found, and the move to running. The metadata gets the
-- claim's patch appended (%(patch)s: the members of a JSON object, without braces; see
-- jobq.domain.changes). Returns the job (its spider's name last) or nothing.
-- With %(alone)s it is a transaction of its own (autocommit; no lock_botgroups before it):
-- it claims only if the project has no capped botgroup, and answers a row of NULLs if it
-- has one (the caller then claims again after lock_botgroups, in a transaction: the count
-- of running jobs must be read after those locks, by a later statement).
WITH capped AS (
    SELECT %(alone)s::boolean AND EXISTS (
        SELECT 1 FROM project_botgroups pb JOIN botgroups b ON b.botgroup = pb.botgroup
        WHERE pb.project_id = %(project)s AND b.max_running IS NOT NULL) AS locks_needed
),
pick AS (/* claim_job */),
pos AS (
    UPDATE projects p SET last_position = GREATEST(%(floor)s::bigint, p.last_position + 1)
    FROM pick
    WHERE p.project_id = %(project)s
    RETURNING p.last_position AS p
),
moved AS (
    UPDATE jobs j SET
        state = 1, position = pos.p, running_position = pos.p,
        meta = CASE WHEN j.meta = '{}' THEN '{' || %(patch)s::text || '}'
            ELSE left(j.meta, -1) || ',' || %(patch)s::text || '}' END,
        tags = CASE WHEN %(tags_changed)s::boolean THEN %(tags)s::text ELSE j.tags END
    FROM pick, pos
    WHERE j.project_id = %(project)s AND j.spider_id = pick.spider_id
      AND j.job_no = pick.job_no
    RETURNING j.spider_id, j.job_no, j.meta, j.pending_position, j.running_position
)
SELECT m.spider_id, m.job_no, m.meta, m.pending_position, m.running_position,
    (SELECT name FROM spiders s WHERE s.project_id = %(project)s AND s.spider_id = m.spider_id)
FROM moved m
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL FROM capped WHERE locks_needed;

-- name: update_one
-- An update line naming one job with a state, in one statement: the job moves to
-- %(state)s if its state is one of %(sources)s (a bit set of jobq.domain.jobs.sources), with the
-- project's next position when the state changes; its metadata gets %(moved)s appended
-- then, %(same)s when it stays (members of a JSON object, without braces, maybe empty).
-- Returns the job's state before (nothing for no such job); the caller refuses a state
-- outside %(sources)s, for which nothing was written. Like every update, it creates the
-- project's row if there is none (no job, no row). `cur` locks the job first (every other
-- CTE reads it before it writes), so alone, in autocommit, it keeps the lock order of
-- every transaction: job row, then project row.
WITH cur AS (
    SELECT state FROM jobs
    WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
      AND state <> 4
    FOR UPDATE
),
ensured AS (
    INSERT INTO projects (project_id, last_position)
    SELECT %(project)s, 0 WHERE NOT EXISTS (SELECT 1 FROM cur)
    ON CONFLICT (project_id) DO NOTHING
),
pos AS (
    UPDATE projects p SET last_position = GREATEST(%(floor)s::bigint, p.last_position + 1)
    FROM cur
    WHERE p.project_id = %(project)s AND cur.state <> %(state)s::smallint
      AND (%(sources)s::integer >> cur.state) & 1 = 1
    RETURNING p.last_position AS p
),
moved AS (
    UPDATE jobs j SET
        state = %(state)s::smallint,
        position = COALESCE(pos.p, j.position),
        pending_position = CASE WHEN %(state)s::smallint = 0
            THEN COALESCE(pos.p, j.pending_position) ELSE j.pending_position END,
        running_position = CASE WHEN %(state)s::smallint = 1
            THEN COALESCE(pos.p, j.running_position) ELSE j.running_position END,
        finished_position = CASE WHEN %(state)s::smallint = 2
            THEN COALESCE(pos.p, j.finished_position) ELSE j.finished_position END,
        deleted_position = CASE WHEN %(state)s::smallint = 3
            THEN COALESCE(pos.p, j.deleted_position) ELSE j.deleted_position END,
        meta = CASE WHEN c.patch = '' THEN j.meta
            WHEN j.meta = '{}' THEN '{' || c.patch || '}'
            ELSE left(j.meta, -1) || ',' || c.patch || '}' END,
        tags = CASE WHEN %(tags_changed)s::boolean THEN %(tags)s::text ELSE j.tags END
    FROM cur LEFT JOIN pos ON true,
        LATERAL (SELECT CASE WHEN pos.p IS NULL THEN %(same)s::text
                             ELSE %(moved)s::text END AS patch) c
    WHERE j.project_id = %(project)s AND j.spider_id = %(spider)s AND j.job_no = %(job)s
      AND (%(sources)s::integer >> cur.state) & 1 = 1
    RETURNING j.state
)
SELECT cur.state, (SELECT count(*) FROM moved) FROM cur;

-- name: lock_jobs
-- A late-locking batch starts by locking (and reading) the jobs its updates name, in
-- key order so that two batches cannot deadlock.
SELECT spider_id, job_no, state, meta FROM jobs
WHERE project_id = %(project)s
  AND (spider_id, job_no) IN (SELECT * FROM unnest(%(spiders)s::bigint[], %(jobs)s::bigint[]))
ORDER BY spider_id, job_no
FOR UPDATE;

-- name: job_for_update
SELECT spider_id, job_no, state, meta FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND state <> 4
FOR UPDATE NOWAIT;

-- name: spider_jobs_for_update
SELECT spider_id, job_no, state, meta FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND state IN (0, 1, 2)
ORDER BY state, position
FOR UPDATE NOWAIT;

-- name: oldest_pending
SELECT spider_id, job_no, state, meta FROM jobs
WHERE project_id = %(project)s AND state = 0
ORDER BY position
LIMIT %(limit)s
FOR UPDATE NOWAIT;

-- name: active_job
SELECT spider_id, job_no, state, meta FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND state IN (0, 1)
FOR UPDATE NOWAIT;

-- name: remove_job
UPDATE jobs SET state = 4, meta = '{}', counters = NULL, tags = NULL, unique_key = NULL
WHERE (project_id, spider_id, job_no) IN (
    SELECT project_id, spider_id, job_no FROM jobs
    WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
      AND state <> 4
    FOR UPDATE NOWAIT);

-- name: backfill_counters_read
-- Migration 0007: the next jobs after a key whose metadata names scrapystats.
SELECT project_id, spider_id, job_no, meta FROM jobs
WHERE (project_id, spider_id, job_no) > (%(project)s::bigint, %(spider)s::bigint, %(job)s::bigint)
  AND state <> 4 AND strpos(meta, '"scrapystats"') > 0
ORDER BY project_id, spider_id, job_no
LIMIT %(limit)s;

-- name: backfill_counters_write
UPDATE jobs j SET counters = v.counters
FROM unnest(%(projects)s::bigint[], %(spiders)s::bigint[], %(jobs)s::bigint[],
            %(counters)s::text[]) AS v(project_id, spider_id, job_no, counters)
WHERE j.project_id = v.project_id AND j.spider_id = v.spider_id AND j.job_no = v.job_no;

-- ------------------------------------------------------------------ settings, botgroups

-- name: settings
SELECT settings FROM projects WHERE project_id = %(project)s;

-- name: save_settings
UPDATE projects SET settings = %(settings)s WHERE project_id = %(project)s;

-- name: clear_project_botgroups
DELETE FROM project_botgroups WHERE project_id = %(project)s;

-- name: add_project_botgroups
INSERT INTO project_botgroups (project_id, botgroup)
SELECT %(project)s, unnest(%(botgroups)s::text[])
ON CONFLICT DO NOTHING;

-- name: set_max_running
INSERT INTO botgroups (botgroup, max_running) VALUES (%(botgroup)s, %(max_running)s)
ON CONFLICT (botgroup) DO UPDATE SET max_running = EXCLUDED.max_running;

-- name: delete_botgroup
DELETE FROM botgroups WHERE botgroup = %(botgroup)s;

-- ------------------------------------------------------------------ jobs: reads

-- name: job_meta
SELECT meta FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND state <> 4
FOR UPDATE NOWAIT;

-- name: job_record
-- One job as `list` reads it, with its metadata (GET jobs/K).
SELECT j.spider_id, j.job_no, j.state, j.position, j.pending_position, j.running_position,
    j.finished_position, j.deleted_position, j.tags, j.counters, s.name, j.meta
FROM jobs j JOIN spiders s ON s.project_id = j.project_id AND s.spider_id = j.spider_id
WHERE j.project_id = %(project)s AND j.spider_id = %(spider)s AND j.job_no = %(job)s
  AND j.state <> 4;

-- name: job_positions
SELECT pending_position, running_position, finished_position, deleted_position FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s;

-- name: state_counts
SELECT state, SUM(n)::bigint FROM state_counts
WHERE project_id = %(project)s AND state < 4
GROUP BY state;

-- name: state_counts_of_spiders
SELECT state, SUM(n)::bigint FROM state_counts
WHERE project_id = %(project)s AND state < 4 AND spider_id = ANY(%(spiders)s::bigint[])
GROUP BY state;

-- name: last_jobs
-- The newest job (highest number, not deleted) of each spider of the project, or of
-- one spider when %(spider)s is not NULL.
SELECT j.spider_id, j.job_no, j.state, j.position, j.pending_position, j.running_position,
    j.finished_position, j.deleted_position, j.tags, j.counters, s.name, j.meta
FROM spiders s
CROSS JOIN LATERAL (
    SELECT * FROM jobs j
    WHERE j.project_id = s.project_id AND j.spider_id = s.spider_id AND j.state IN (0, 1, 2)
    ORDER BY j.job_no DESC
    LIMIT 1
) j
WHERE s.project_id = %(project)s
  AND (%(spider)s::bigint IS NULL OR s.spider_id = %(spider)s::bigint)
ORDER BY s.spider_id;

-- name: projects
SELECT project_id FROM projects ORDER BY 1;

-- name: list_columns
j.spider_id, j.job_no, j.state, j.position, j.pending_position, j.running_position,
    j.finished_position, j.deleted_position, j.tags, j.counters, s.name

-- name: list_source
FROM jobs j JOIN spiders s ON s.project_id = j.project_id AND s.spider_id = j.spider_id

-- ------------------------------------------------------------------ credentials, secrets

-- name: create_api_key
INSERT INTO api_keys (key_hash, name, project_id, created_ms)
VALUES (%(key_hash)s, %(name)s, %(project)s, %(created)s)
RETURNING key_id;

-- name: find_api_key
SELECT key_id, name, project_id, created_ms, revoked_ms FROM api_keys
WHERE key_hash = %(key_hash)s AND revoked_ms IS NULL;

-- name: list_api_keys
SELECT key_id, name, project_id, created_ms, revoked_ms FROM api_keys ORDER BY key_id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_ms = %(now)s WHERE key_id = %(key_id)s AND revoked_ms IS NULL;

-- name: insert_secret
INSERT INTO secrets (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT DO NOTHING;

-- name: secret
SELECT value FROM secrets WHERE name = %(name)s;

-- name: units_in_use
-- The units of the running jobs, summed, and the most units of a pending job: a job's
-- `units` metadata when an integer from 1 to %(cap)s, else 1 (as SQLite's json_type
-- 'integer' reads it). CASE, not AND, so that the cast never sees a non-number.
WITH active AS (
    SELECT state, meta::jsonb -> 'units' AS units FROM jobs
    WHERE project_id = %(project)s AND state IN (0, 1)
), counted AS (
    SELECT state,
        CASE WHEN jsonb_typeof(units) = 'number' AND units::text ~ '^[1-9][0-9]{0,9}$'
             THEN CASE WHEN units::text::bigint <= %(cap)s THEN units::text::bigint ELSE 1 END
             ELSE 1 END AS u
    FROM active
)
SELECT COALESCE(SUM(u) FILTER (WHERE state = 1), 0)::bigint,
       MAX(u) FILTER (WHERE state = 0)
FROM counted;
