-- Named queries of the chunk store (jobq/storage/_pg_chunks.py): what jobs produce.

-- name: job_state_shared
-- FOR SHARE: a finish or a requeue waits for this write's commit, so the state read
-- holds until then
SELECT state, running_position FROM jobs
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
FOR SHARE;

-- name: ensure_head
INSERT INTO job_data_heads (project_id, spider_id, job_no, kind, next_index, input_bytes, counts)
VALUES (%(project)s, %(spider)s, %(job)s, %(kind)s, 0, 0, '{}')
ON CONFLICT DO NOTHING;

-- name: head_for_update
SELECT next_index, input_bytes, counts FROM job_data_heads
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = %(kind)s
FOR UPDATE;

-- name: head
SELECT next_index, input_bytes, counts FROM job_data_heads
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = %(kind)s;

-- name: save_head
UPDATE job_data_heads SET next_index = %(next_index)s, input_bytes = %(input_bytes)s,
    counts = %(counts)s
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = %(kind)s;

-- name: insert_chunk
INSERT INTO job_data_chunks (project_id, spider_id, job_no, kind, first_index, n, ts,
    raw_bytes, data)
VALUES (%(project)s, %(spider)s, %(job)s, %(kind)s, %(first)s, %(n)s, %(ts)s,
    %(raw_bytes)s, %(data)s);

-- name: chunks_from
SELECT first_index, n, ts, data FROM job_data_chunks
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = %(kind)s
  AND first_index >= coalesce((
    SELECT max(first_index) FROM job_data_chunks
    WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
      AND kind = %(kind)s AND first_index <= %(from)s), 0)
ORDER BY first_index
LIMIT %(limit)s;

-- name: delete_chunks
DELETE FROM job_data_chunks
WHERE (project_id, spider_id, job_no, kind, first_index) IN (
    SELECT project_id, spider_id, job_no, kind, first_index FROM job_data_chunks
    WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
    LIMIT %(limit)s);

-- name: clear_stream_chunks
-- a requeue starts the job afresh (jobq.domain.leases.REQUEUE_CLEARS), in its transaction
DELETE FROM job_data_chunks
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = ANY(%(kinds)s);

-- name: clear_stream_heads
DELETE FROM job_data_heads
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND kind = ANY(%(kinds)s);

-- name: delete_heads
-- only once no chunk is left: a janitor on another node may still be deleting some, and a
-- head is how the janitor finds a job's chunks
DELETE FROM job_data_heads h
WHERE h.project_id = %(project)s AND h.spider_id = %(spider)s AND h.job_no = %(job)s
  AND NOT EXISTS (SELECT 1 FROM job_data_chunks c
                  WHERE c.project_id = h.project_id AND c.spider_id = h.spider_id
                    AND c.job_no = h.job_no AND c.kind = h.kind);

-- name: orphaned
SELECT DISTINCT h.project_id, h.spider_id, h.job_no FROM job_data_heads h
LEFT JOIN jobs j ON j.project_id = h.project_id AND j.spider_id = h.spider_id
    AND j.job_no = h.job_no
WHERE j.state IS NULL OR j.state IN (3, 4)
LIMIT %(limit)s;

-- name: expired
SELECT DISTINCT h.project_id, h.spider_id, h.job_no FROM job_data_heads h
JOIN jobs j ON j.project_id = h.project_id AND j.spider_id = h.spider_id
    AND j.job_no = h.job_no
WHERE h.project_id = %(project)s AND j.state = 2 AND j.position < %(before)s
LIMIT %(limit)s;

-- name: projects_with_data
SELECT DISTINCT project_id FROM job_data_heads ORDER BY 1;
