-- The calling policy: windows in the callee's local time, deadlines and
-- follow-up attempts (DESIGN.md "Calling policy").
--
-- The record's four extension keys. ADD COLUMN rewrites no row, except
-- through a default, which SQLite keeps in the schema, not in the rows.
ALTER TABLE callbacks ADD COLUMN timezone TEXT;
ALTER TABLE callbacks ADD COLUMN expires_at INTEGER;
ALTER TABLE callbacks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE callbacks ADD COLUMN previous_callback_id TEXT;

-- Each scheduled callback's next eligible instant (at or after
-- scheduled_at, inside a window in its zone, before its deadline) and the
-- end of the window it falls in (NULL: no windows). The store computes
-- them on create, reschedule and policy change, so claim_due seeks the
-- eligible ones by index and never reads a callback outside its window.
-- A callback with no opening before its deadline has eligible_at =
-- window_ends_at = expires_at: claim_due meets it at its deadline and
-- expires it.
ALTER TABLE callbacks ADD COLUMN eligible_at INTEGER;
ALTER TABLE callbacks ADD COLUMN window_ends_at INTEGER;
-- Callbacks scheduled before this version had no policy: eligible when due.
UPDATE callbacks SET eligible_at = scheduled_at WHERE status = 'scheduled';

DROP INDEX callbacks_due;
CREATE INDEX callbacks_due ON callbacks (eligible_at, seq) WHERE status = 'scheduled';
-- expire_overdue's sweep.
CREATE INDEX callbacks_expiring ON callbacks (expires_at, seq)
    WHERE status = 'scheduled' AND expires_at IS NOT NULL;
-- One follow-up per attempt: a second retry finds the first one's.
CREATE UNIQUE INDEX callbacks_follow_up ON callbacks (previous_callback_id)
    WHERE previous_callback_id IS NOT NULL;

-- One policy per organization (agent_id '') and per overridden agent, as
-- the JSON of DESIGN.md (checked by the store before it is written).
CREATE TABLE calling_policies (
    id               INTEGER PRIMARY KEY,
    organization_id  TEXT    NOT NULL,
    agent_id         TEXT    NOT NULL,
    policy           TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (organization_id, agent_id)
);
