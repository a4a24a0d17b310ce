-- Placeholder so that the appapi branch numbers its migration 0004; the real 0003 comes
-- from another branch at merge, and this file is dropped then.
SELECT 1;
