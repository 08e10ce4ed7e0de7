-- The history chain of migrations/sqlite V5: each callback keeps the seq of
-- its last event and each event the seq of the one before it, so that a
-- copy between the backends moves the links with the rows, both ways.
--
-- PostgreSQL keeps its index of events by callback and the ON DELETE
-- CASCADE (history and prune still read by them): SQLite dropped the index
-- because every page a transaction touches is a WAL frame at each commit;
-- PostgreSQL logs a changed index page in full only once per checkpoint,
-- then only the entries, so the index costs it little per transition.
-- No other index is a prefix of another here: each organization index ends
-- with seq, the order its list pages by.
ALTER TABLE callbacks ADD COLUMN last_event_seq BIGINT;
ALTER TABLE callback_events ADD COLUMN previous_event_seq BIGINT;

UPDATE callbacks c SET last_event_seq = l.seq
FROM (SELECT callback_seq, max(seq) AS seq FROM callback_events GROUP BY callback_seq) l
WHERE l.callback_seq = c.seq;

UPDATE callback_events e SET previous_event_seq = p.previous
FROM (SELECT seq, lag(seq) OVER (PARTITION BY callback_seq ORDER BY seq) AS previous
      FROM callback_events) p
WHERE p.seq = e.seq AND p.previous IS NOT NULL;
