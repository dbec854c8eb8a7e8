-- A dedupe key holds while its job is pending or running only (PostgreSQL's 0013): a key
-- whose job is done, failed or cancelled can be queued again (a rebind that failed for good
-- is queued again by the next start's stale check; a round of variants that made none lets
-- the next round be queued). SQLite cannot drop the column's UNIQUE: the table is rebuilt.
CREATE TABLE jobs_0018 (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    deadline REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires REAL,
    result TEXT,
    dedupe TEXT,
    hold_until REAL NOT NULL DEFAULT 0
);
INSERT INTO jobs_0018 (id, kind, payload, state, created, not_before, deadline, attempts,
    lease_owner, lease_expires, result, dedupe, hold_until)
SELECT id, kind, payload, state, created, not_before, deadline, attempts, lease_owner,
    lease_expires, result, dedupe, hold_until FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_0018 RENAME TO jobs;
CREATE INDEX jobs_state ON jobs (state, not_before);
CREATE UNIQUE INDEX jobs_dedupe_open ON jobs (dedupe) WHERE state IN ('pending', 'running');
