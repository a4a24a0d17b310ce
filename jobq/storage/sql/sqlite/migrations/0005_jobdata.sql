-- jobq schema, version 5 (SQLite): what jobs produce (items, log lines, requests).
-- kind: 0 items, 1 logs, 2 requests. Records live in compressed chunks (zstd JSON
-- lines, see jobq/storage/chunks.py), not one row a record.

-- a stream (one kind of record of one job): the next index and the stats
CREATE TABLE job_data_heads (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    job_no INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    next_index INTEGER NOT NULL,
    input_bytes INTEGER NOT NULL,
    counts TEXT NOT NULL,  -- JSON object: by log level, or by item field
    PRIMARY KEY (project_id, spider_id, job_no, kind)
) WITHOUT ROWID;

-- chunks are large rows: a rowid table, found through its unique key
CREATE TABLE job_data_chunks (
    project_id INTEGER NOT NULL,
    spider_id INTEGER NOT NULL,
    job_no INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts INTEGER NOT NULL,        -- ms, when the records were written
    raw_bytes INTEGER NOT NULL, -- before compression
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX job_data_chunks_key
    ON job_data_chunks (project_id, spider_id, job_no, kind, first_index);
