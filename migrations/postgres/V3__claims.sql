-- Fenced claims, as in migrations/sqlite V3: entering `dispatching` stores a
-- fresh random token with the callback; `place_call` spends it
-- (claim_spent_at) in one guarded UPDATE before dialing.
ALTER TABLE callbacks ADD COLUMN claim_token TEXT;
ALTER TABLE callbacks ADD COLUMN claim_spent_at BIGINT;
