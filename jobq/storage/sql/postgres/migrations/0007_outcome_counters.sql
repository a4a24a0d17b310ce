-- jobq schema, version 7 (PostgreSQL): the outcome counters of a job (items, pages, logs,
-- errors: `jobq.domain.jobs.outcome_counters` of its `scrapystats`) as JSON, written with
-- the metadata they come from, so that a list shows them without reading the metadata.
-- NULL: no scrapystats. The jobs stored so far get theirs right after this script, in
-- the same transaction, from the same domain function (`_pg_tx.backfill_counters`).
ALTER TABLE jobs ADD COLUMN counters text;
