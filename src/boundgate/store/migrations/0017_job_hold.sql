-- A job held back (a Retry-After from its tenant's limits, a retry's backoff) starts no
-- earlier than hold_until: re-planning moves not_before within [hold_until, deadline] only
-- (PostgreSQL's 0012). 0: not held.
ALTER TABLE jobs ADD COLUMN hold_until REAL NOT NULL DEFAULT 0;
