-- Workers and leases (issue 10). A worker registers and heartbeats; a job it claims
-- holds a lease that its heartbeats renew. Times are ms since the epoch.

CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    slots INTEGER NOT NULL,
    botgroups TEXT NOT NULL,   -- JSON array of names
    projects TEXT NOT NULL,    -- JSON array of project ids
    version TEXT NOT NULL,
    owner TEXT NOT NULL,       -- the key name that registered it
    registered_ms INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL,
    -- the worker is lost once this passes without a heartbeat
    expires_ms INTEGER NOT NULL,
    lost_ms INTEGER
) WITHOUT ROWID;

-- one lease per running job claimed by a worker; gone when the job leaves running
-- through the reaper (lost, requeued, timed out)
CREATE TABLE leases (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    job_no INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    claimed_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    runtime_deadline_ms INTEGER,
    -- a stop asked of the worker: the close_reason it should report, the deadline, and
    -- the close_reason the server sets if the job is still running then
    stop_reason TEXT,
    stop_deadline_ms INTEGER,
    expiry_reason TEXT,
    PRIMARY KEY (project_id, spider_id, job_no)
) WITHOUT ROWID;
CREATE INDEX leases_by_worker ON leases (worker_id);
CREATE INDEX leases_expiry ON leases (expires_ms);
CREATE INDEX leases_stop ON leases (stop_deadline_ms) WHERE stop_deadline_ms IS NOT NULL;
CREATE INDEX leases_runtime ON leases (runtime_deadline_ms)
    WHERE runtime_deadline_ms IS NOT NULL AND stop_deadline_ms IS NULL;

-- the reapers of every server process share this row: a gap since the last tick means
-- nobody could reach the database (or no server ran), and earns every lease a grace
CREATE TABLE reaper_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_tick_ms INTEGER NOT NULL
);
INSERT INTO reaper_state (id, last_tick_ms) VALUES (1, 0);
