-- Workers and leases (issue 10): the named queries of jobq/storage/_pg_workers.py.

-- name: insert_worker
INSERT INTO workers (worker_id, name, host, slots, botgroups, projects, version, owner,
    registered_ms, last_heartbeat_ms, expires_ms, lost_ms)
VALUES (%(worker_id)s, %(name)s, %(host)s, %(slots)s, %(botgroups)s, %(projects)s,
    %(version)s, %(owner)s, %(registered_ms)s, %(last_heartbeat_ms)s, %(expires_ms)s,
    %(lost_ms)s);

-- name: worker
SELECT worker_id, name, host, slots, botgroups, projects, version, owner, registered_ms,
    last_heartbeat_ms, expires_ms, lost_ms
FROM workers WHERE worker_id = %(worker_id)s;

-- name: workers
SELECT worker_id, name, host, slots, botgroups, projects, version, owner, registered_ms,
    last_heartbeat_ms, expires_ms, lost_ms
FROM workers ORDER BY registered_ms, worker_id;

-- name: held_jobs
-- The running jobs each worker holds leases on (all workers when %(worker_id)s is null).
SELECT l.worker_id, l.project_id, l.spider_id, l.job_no
FROM leases l JOIN jobs j
  ON j.project_id = l.project_id AND j.spider_id = l.spider_id AND j.job_no = l.job_no
WHERE (%(worker_id)s::text IS NULL OR l.worker_id = %(worker_id)s::text) AND j.state = 1
ORDER BY 2, 3, 4;

-- name: delete_worker_leases
DELETE FROM leases WHERE worker_id = %(worker_id)s;

-- name: delete_worker
DELETE FROM workers WHERE worker_id = %(worker_id)s;

-- name: worker_lost
SELECT lost_ms FROM workers WHERE worker_id = %(worker_id)s;

-- name: beat_worker
UPDATE workers SET last_heartbeat_ms = %(now)s, expires_ms = %(expires)s, lost_ms = NULL
WHERE worker_id = %(worker_id)s;

-- name: renew_leases
-- The worker's own leases on the keys it reports, renewed (and locked until commit, so
-- a reaper that takes one waits, then finds it no longer expired).
UPDATE leases l SET expires_ms = GREATEST(l.expires_ms, %(expires)s)
FROM unnest(%(projects)s::bigint[], %(spiders)s::bigint[], %(jobs)s::bigint[]) AS k(p, s, j)
WHERE l.project_id = k.p AND l.spider_id = k.s AND l.job_no = k.j
  AND l.worker_id = %(worker_id)s
RETURNING l.project_id, l.spider_id, l.job_no, l.worker_id, l.lease_id, l.claimed_ms,
    l.expires_ms, l.runtime_deadline_ms, l.stop_reason, l.stop_deadline_ms, l.expiry_reason;

-- name: job_states
SELECT k.p, k.s, k.j, j.state, j.meta
FROM unnest(%(projects)s::bigint[], %(spiders)s::bigint[], %(jobs)s::bigint[]) AS k(p, s, j)
JOIN jobs j ON j.project_id = k.p AND j.spider_id = k.s AND j.job_no = k.j AND j.state <> 4;

-- name: record_stop
UPDATE leases SET stop_reason = %(reason)s, stop_deadline_ms = %(deadline)s,
    expiry_reason = %(expiry)s
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND worker_id = %(worker_id)s AND stop_deadline_ms IS NULL;

-- name: insert_lease
INSERT INTO leases (project_id, spider_id, job_no, worker_id, lease_id, claimed_ms,
    expires_ms, runtime_deadline_ms)
VALUES (%(project)s, %(spider)s, %(job)s, %(worker_id)s, %(lease_id)s, %(claimed_ms)s,
    %(expires_ms)s, %(runtime_deadline_ms)s)
ON CONFLICT (project_id, spider_id, job_no) DO UPDATE SET
    worker_id = EXCLUDED.worker_id, lease_id = EXCLUDED.lease_id,
    claimed_ms = EXCLUDED.claimed_ms, expires_ms = EXCLUDED.expires_ms,
    runtime_deadline_ms = EXCLUDED.runtime_deadline_ms, stop_reason = NULL,
    stop_deadline_ms = NULL, expiry_reason = NULL;

-- name: reaper_state_for_update
SELECT last_tick_ms FROM reaper_state WHERE id = 1 FOR UPDATE;

-- name: grace_leases
UPDATE leases SET expires_ms = GREATEST(expires_ms, %(expires)s);

-- name: grace_workers
UPDATE workers SET expires_ms = GREATEST(expires_ms, %(expires)s) WHERE lost_ms IS NULL;

-- name: save_tick
UPDATE reaper_state SET last_tick_ms = GREATEST(last_tick_ms, %(now)s) WHERE id = 1;

-- name: mark_lost_workers
UPDATE workers SET lost_ms = %(now)s WHERE lost_ms IS NULL AND expires_ms <= %(now)s;

-- name: due_leases
SELECT project_id, spider_id, job_no, worker_id, lease_id, claimed_ms, expires_ms,
    runtime_deadline_ms, stop_reason, stop_deadline_ms, expiry_reason
FROM leases
WHERE expires_ms <= %(now)s OR stop_deadline_ms <= %(now)s
   OR (runtime_deadline_ms <= %(now)s AND stop_deadline_ms IS NULL)
ORDER BY expires_ms, project_id, spider_id, job_no
LIMIT %(limit)s;

-- name: take_due_lease
-- The reaper takes a lease only while it is still due: of several nodes, one gets it.
DELETE FROM leases
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND lease_id = %(lease_id)s AND (expires_ms <= %(now)s OR stop_deadline_ms <= %(now)s)
RETURNING project_id, spider_id, job_no, worker_id, lease_id, claimed_ms, expires_ms,
    runtime_deadline_ms, stop_reason, stop_deadline_ms, expiry_reason;

-- name: time_limit_stop
UPDATE leases SET stop_reason = %(reason)s, stop_deadline_ms = %(deadline)s,
    expiry_reason = %(expiry)s
WHERE project_id = %(project)s AND spider_id = %(spider)s AND job_no = %(job)s
  AND lease_id = %(lease_id)s AND stop_deadline_ms IS NULL
  AND runtime_deadline_ms <= %(now)s;
