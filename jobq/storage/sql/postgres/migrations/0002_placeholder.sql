-- Placeholder so that the workers branch numbers its migration 0003; the real 0002 comes
-- from another branch at merge, and this file is dropped then.
SELECT 1;
