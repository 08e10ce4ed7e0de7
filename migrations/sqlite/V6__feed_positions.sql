-- The change feed's positions (issue 15, core/src/feed.rs). PostgreSQL's V6
-- adds a column and a table to position events after they commit, because
-- its writers commit out of the order of their seqs. SQLite needs neither:
-- writers take turns on the file's write lock and a new event's seq is the
-- largest plus one, so seqs are taken in commit order and an event's seq is
-- its position.

-- The feed's identity, bound into every feed cursor (core/src/feed.rs): a
-- copy (`copy_into`) numbers the positions of its target anew, so the
-- source's cursors must be refused there rather than read at the wrong
-- place. A copy moves the cursor secret, never this.
INSERT INTO store_meta (key, value) VALUES ('feed_epoch', randomblob(16));
