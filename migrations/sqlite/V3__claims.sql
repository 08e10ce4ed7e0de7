-- Fenced claims. Entering `dispatching` stores a fresh random 128-bit token
-- (32 lowercase hex digits) with the callback; the claim handed out carries
-- it. `place_call` spends the claim (sets claim_spent_at) in one guarded
-- UPDATE before dialing, so one claim places at most one call. Both columns
-- stay after the callback leaves `dispatching`, for the record. Callbacks
-- claimed before this migration have no token: they can be completed or
-- failed without one, and recover_stale fails them as before.
-- ADD COLUMN with no default rewrites no row: instant on a file of any size.
ALTER TABLE callbacks ADD COLUMN claim_token TEXT;
ALTER TABLE callbacks ADD COLUMN claim_spent_at INTEGER;
