-- A job held back (a Retry-After from its tenant's limits, a retry's backoff) starts no
-- earlier than hold_until: re-planning moves not_before within [hold_until, deadline] only
-- (SQLite's 0017). 0: not held.
ALTER TABLE jobs ADD COLUMN hold_until DOUBLE PRECISION NOT NULL DEFAULT 0;
