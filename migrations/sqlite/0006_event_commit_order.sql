-- Same version as PostgreSQL's 0006 (the events' writing transaction). SQLite has one
-- writer, which draws an event's id inside its transaction, so ids already follow
-- commit order and nothing changes here.
SELECT 1;
