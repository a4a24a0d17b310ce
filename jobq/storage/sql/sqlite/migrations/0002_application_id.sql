-- jobq schema, version 2 (SQLite): mark the file as jobq's.
-- application_id 0x6A6F6271 ("jobq" in ASCII, 1785684593) sits in the database header
-- (offset 68), so `file` and jobq itself can tell a jobq database from another
-- application's: jobq refuses to start on a file whose application_id is not this one
-- (an empty file, or a jobq database of schema 1, made before this mark, excepted).
PRAGMA application_id = 1785684593;
