-- jobq schema, version 5 (PostgreSQL): what jobs produce (items, log lines, requests).
-- kind: 0 items, 1 logs, 2 requests. Records live in compressed chunks (zstd JSON
-- lines, see jobq/storage/chunks.py), not one row a record. Keyed by project_id first,
-- like every per-project table.

-- a stream (one kind of record of one job): the next index and the stats
CREATE TABLE job_data_heads (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    job_no bigint NOT NULL,
    kind smallint NOT NULL,
    next_index bigint NOT NULL,
    input_bytes bigint NOT NULL,
    counts text NOT NULL,  -- JSON object: by log level, or by item field
    PRIMARY KEY (project_id, spider_id, job_no, kind)
);

CREATE TABLE job_data_chunks (
    project_id bigint NOT NULL,
    spider_id bigint NOT NULL,
    job_no bigint NOT NULL,
    kind smallint NOT NULL,
    first_index bigint NOT NULL,
    n integer NOT NULL,
    ts bigint NOT NULL,          -- ms, when the records were written
    raw_bytes integer NOT NULL,  -- before compression
    data bytea NOT NULL,
    PRIMARY KEY (project_id, spider_id, job_no, kind, first_index)
);
-- chunks are zstd already: TOAST must not try to compress them again
ALTER TABLE job_data_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
