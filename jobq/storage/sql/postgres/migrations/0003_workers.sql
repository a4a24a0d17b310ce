-- Workers and leases (issue 10). A worker registers and heartbeats; a job it claims
-- holds a lease that its heartbeats renew. Times are ms since the epoch.

CREATE TABLE workers (
    worker_id text PRIMARY KEY,
    name text NOT NULL,
    host text NOT NULL,
    slots integer NOT NULL,
    botgroups text NOT NULL,   -- JSON array of names
    projects text NOT NULL,    -- JSON array of project ids
    version text NOT NULL,
    owner text NOT NULL,       -- the key name that registered it
    registered_ms bigint NOT NULL,
    last_heartbeat_ms bigint NOT NULL,
    -- the worker is lost once this passes without a heartbeat
    expires_ms bigint NOT NULL,
    lost_ms bigint
);

-- one lease per running job claimed by a worker; gone when the job leaves running
-- through the reaper (lost, requeued, timed out)
CREATE TABLE leases (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    job_no bigint NOT NULL,
    worker_id text NOT NULL,
    lease_id text NOT NULL,
    claimed_ms bigint NOT NULL,
    expires_ms bigint NOT NULL,
    runtime_deadline_ms bigint,
    -- a stop asked of the worker: the close_reason it should report, the deadline, and
    -- the close_reason the server sets if the job is still running then
    stop_reason text,
    stop_deadline_ms bigint,
    expiry_reason text,
    PRIMARY KEY (project_id, spider_id, job_no)
);
CREATE INDEX leases_by_worker ON leases (worker_id);
CREATE INDEX leases_expiry ON leases (expires_ms);
CREATE INDEX leases_stop ON leases (stop_deadline_ms) WHERE stop_deadline_ms IS NOT NULL;
CREATE INDEX leases_runtime ON leases (runtime_deadline_ms)
    WHERE runtime_deadline_ms IS NOT NULL AND stop_deadline_ms IS NULL;

-- the reapers of every server node share this row: a gap since the last tick means
-- nobody could reach the database (or no server ran), and earns every lease a grace
CREATE TABLE reaper_state (
    id integer PRIMARY KEY CHECK (id = 1),
    last_tick_ms bigint NOT NULL
);
INSERT INTO reaper_state (id, last_tick_ms) VALUES (1, 0);

-- long-poll claims on other nodes wake up when a job becomes pending (push, requeue)
CREATE FUNCTION jobq_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobq_pending', p::text)
    FROM (SELECT DISTINCT project_id AS p FROM new_rows WHERE state = 0) AS pending;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_pending_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobq_notify_pending();
CREATE TRIGGER jobs_pending_updated AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobq_notify_pending();
