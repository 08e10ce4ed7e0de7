-- The change feed's positions (issue 15, core/src/feed.rs). PostgreSQL's V6
-- adds a column and a table to position events after they commit, because
-- its writers commit out of the order of their seqs. SQLite needs neither:
-- writers take turns on the file's write lock and a new event's seq is the
-- largest plus one, so seqs are taken in commit order and an event's seq is
-- its position. This migration keeps the two backends' versions and names
-- the same; it changes nothing.
SELECT 1;
