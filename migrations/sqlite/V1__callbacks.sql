-- Callbacks and their history. Timestamps are integer microseconds since the
-- Unix epoch (UTC). `seq` is the row's insertion order: it breaks ties of equal
-- timestamps so that keyset pagination is a total order.
CREATE TABLE callbacks (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    organization_id     TEXT    NOT NULL,
    source_session_id   TEXT,
    created_session_id  TEXT,
    agent_id            TEXT,
    phone_number_id     TEXT,
    to_number           TEXT    NOT NULL,
    from_number         TEXT,
    scheduled_at        INTEGER NOT NULL,
    status              TEXT    NOT NULL
        CHECK (status IN ('scheduled', 'dispatching', 'dispatched', 'cancelled', 'failed')),
    reason              TEXT,
    instructions        TEXT,
    summary             TEXT,
    pipeline_config     TEXT    NOT NULL DEFAULT '{}',
    metadata            TEXT    NOT NULL DEFAULT '{}',
    failure_cause       TEXT,
    attempted_at        INTEGER,
    dispatched_at       INTEGER,
    cancelled_at        INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    idempotency_key     TEXT,
    -- SHA-256 of the creating request, to tell a retry from a different payload.
    request_hash        BLOB
);

-- One per list filter and order, each led by the organization. "Newest
-- first" is insertion order (seq, the rowid, which every index ends with
-- implicitly), so keyset paging is a seek even when many rows share a
-- created_at (a create_many batch does).
CREATE INDEX callbacks_by_org ON callbacks (organization_id);
CREATE INDEX callbacks_by_org_status ON callbacks (organization_id, status);
CREATE INDEX callbacks_by_org_source ON callbacks (organization_id, source_session_id)
    WHERE source_session_id IS NOT NULL;
CREATE INDEX callbacks_by_org_agent ON callbacks (organization_id, agent_id)
    WHERE agent_id IS NOT NULL;
CREATE INDEX callbacks_by_org_to_number ON callbacks (organization_id, to_number);
CREATE INDEX callbacks_by_org_scheduled ON callbacks (organization_id, scheduled_at, seq);
CREATE INDEX callbacks_by_org_status_scheduled ON callbacks (organization_id, status, scheduled_at, seq);

-- Store-wide work: due callbacks for claim_due, stale dispatches for
-- recover_stale, finished callbacks for prune.
CREATE INDEX callbacks_due ON callbacks (scheduled_at, seq) WHERE status = 'scheduled';
CREATE INDEX callbacks_stale ON callbacks (attempted_at, seq) WHERE status = 'dispatching';
CREATE INDEX callbacks_finished ON callbacks (updated_at)
    WHERE status IN ('dispatched', 'cancelled', 'failed');

CREATE UNIQUE INDEX callbacks_idempotency ON callbacks (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE callback_events (
    seq           INTEGER PRIMARY KEY,
    callback_seq  INTEGER NOT NULL REFERENCES callbacks (seq) ON DELETE CASCADE,
    action        TEXT    NOT NULL,
    from_status   TEXT,
    to_status     TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    detail        TEXT
);
CREATE INDEX callback_events_by_callback ON callback_events (callback_seq, seq);

-- Per-file secrets and settings.
CREATE TABLE store_meta (
    key    TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) WITHOUT ROWID;

-- Signs list cursors, so a tampered cursor is detected.
INSERT INTO store_meta (key, value) VALUES ('cursor_secret', randomblob(32));
