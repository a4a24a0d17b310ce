-- jobq schema, version 2 (PostgreSQL): jobq's tables live in a schema of their own,
-- `jobq`, so a database shared with another application never mixes their tables, and
-- the schema marks the database as jobq's. The migration runner creates the schema and
-- runs every migration with `search_path = jobq` (so migrations use unqualified names),
-- and jobq's sessions set the same search_path. A fresh database made its tables there
-- already; one made by schema 1 has them (and the version table) in `public`: move them.
-- Indexes, triggers, constraints and the identity sequence move with their tables.
DO $$
BEGIN
    IF to_regclass('public.jobq_schema_version') IS NOT NULL THEN
        ALTER TABLE public.projects SET SCHEMA jobq;
        ALTER TABLE public.spiders SET SCHEMA jobq;
        ALTER TABLE public.jobs SET SCHEMA jobq;
        ALTER TABLE public.job_tags SET SCHEMA jobq;
        ALTER TABLE public.state_counts SET SCHEMA jobq;
        ALTER TABLE public.project_botgroups SET SCHEMA jobq;
        ALTER TABLE public.botgroups SET SCHEMA jobq;
        ALTER TABLE public.api_keys SET SCHEMA jobq;
        ALTER TABLE public.secrets SET SCHEMA jobq;
        ALTER FUNCTION public.jobq_jobs_inserted() SET SCHEMA jobq;
        ALTER FUNCTION public.jobq_job_state_changed() SET SCHEMA jobq;
        ALTER FUNCTION public.jobq_job_tags_changed() SET SCHEMA jobq;
        ALTER TABLE public.jobq_schema_version SET SCHEMA jobq;
    END IF;
END
$$;
