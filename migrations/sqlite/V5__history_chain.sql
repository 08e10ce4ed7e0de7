-- Fewer pages per transition (issue 14). Every distinct B-tree page a
-- transaction touches is one more WAL frame at its commit. The history
-- index `callback_events_by_callback` (callback_seq, seq) took a page at a
-- random leaf for every event appended (1.2 frames per completion): the
-- callbacks of a drain finish in eligibility order, not in seq order.
--
-- Instead, each callback's events form a chain through the rows
-- themselves: the callback keeps the seq of its last event
-- (`last_event_seq`, on the row's own page, which the transition writes
-- anyway) and each event the seq of the one before it
-- (`previous_event_seq`). `history(id)` walks the chain by rowid from the
-- callback, and prune deletes a finished callback's events by its chain.
-- The history stays one store-wide log in `seq` (commit) order; only the
-- per-callback index goes.
--
-- The foreign key goes with the index: ON DELETE CASCADE (and any
-- foreign-key check of a deleted callback) searches the events by
-- callback_seq, which without the index scans the whole log for every
-- callback pruned. SQLite cannot drop a constraint in place, so the table
-- is rebuilt: this runs in the migrations' one transaction (schema.rs
-- `migrate`), so a crash leaves the file at V4 as it was, or at V5.

ALTER TABLE callbacks ADD COLUMN last_event_seq INTEGER;
-- Through the old index, while it is there: one seek per callback.
UPDATE callbacks SET last_event_seq =
    (SELECT MAX(e.seq) FROM callback_events e WHERE e.callback_seq = callbacks.seq);

ALTER TABLE callback_events RENAME TO callback_events_v4;
-- The columns of V1 in their order, then the link (PostgreSQL's V5 adds
-- it last as well, so both list the same columns in the same order).
CREATE TABLE callback_events (
    seq                 INTEGER PRIMARY KEY,
    callback_seq        INTEGER NOT NULL,
    action              TEXT    NOT NULL,
    from_status         TEXT,
    to_status           TEXT    NOT NULL,
    at                  INTEGER NOT NULL,
    detail              TEXT,
    previous_event_seq  INTEGER
);
-- In seq order, each row appended after the last (no random inserts into
-- the new table); the previous event through the old index.
INSERT INTO callback_events
    (seq, callback_seq, action, from_status, to_status, at, detail, previous_event_seq)
SELECT e.seq, e.callback_seq, e.action, e.from_status, e.to_status, e.at, e.detail,
    (SELECT MAX(p.seq) FROM callback_events_v4 p
     WHERE p.callback_seq = e.callback_seq AND p.seq < e.seq)
FROM callback_events_v4 e
ORDER BY e.seq;
DROP TABLE callback_events_v4;

-- A constant IN list in an index's WHERE is evaluated by building an
-- ephemeral table, for the old and the new row of every UPDATE that sets
-- `status` and for every INSERT: a B-tree opened, a zero-filled page and
-- three inserts, each time. The same predicate as ORs of comparisons costs
-- a few opcodes (bench I1). prune (db.rs) writes its WHERE the same way,
-- so that the planner still uses this index.
DROP INDEX callbacks_finished;
CREATE INDEX callbacks_finished ON callbacks (updated_at)
    WHERE status = 'dispatched' OR status = 'cancelled' OR status = 'failed';
