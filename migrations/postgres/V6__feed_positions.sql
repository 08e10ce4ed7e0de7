-- The change feed's positions (issue 15, core/src/feed.rs). Writers commit
-- in parallel here, so the seqs they took from the sequence commit out of
-- order: a reader that moved past seq 11 would never see seq 10 if its
-- transaction committed later. Events are therefore given a position after
-- they commit, by the feed's readers, one at a time (the row lock of
-- `feed_state`), in seq order after the last position given: a position
-- is readable only once every smaller one is. Writers pay nothing but the
-- small partial index of events still without a position.
ALTER TABLE callback_events ADD COLUMN feed_position BIGINT;

-- One row: the last position given. Positions are never given twice, even
-- after prune deleted the newest events.
CREATE TABLE feed_state (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    last_position  BIGINT  NOT NULL
);

-- The events of the history so far, in seq order: committed, all of them.
UPDATE callback_events e SET feed_position = n.position
FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS position FROM callback_events) n
WHERE n.seq = e.seq;
INSERT INTO feed_state (last_position)
SELECT COALESCE(MAX(feed_position), 0) FROM callback_events;

CREATE UNIQUE INDEX callback_events_by_feed_position ON callback_events (feed_position);
CREATE INDEX callback_events_unpositioned ON callback_events (seq) WHERE feed_position IS NULL;

-- The feed's identity, bound into every feed cursor (core/src/feed.rs): a
-- copy (`copy_into`) numbers the positions of its target anew, so the
-- source's cursors must be refused there rather than read at the wrong
-- place. A copy moves the cursor secret, never this.
INSERT INTO store_meta (key, value) VALUES ('feed_epoch',
    decode(replace(gen_random_uuid()::text, '-', ''), 'hex'));
