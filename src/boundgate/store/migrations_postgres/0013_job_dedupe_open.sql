-- A dedupe key holds while its job is pending or running only (SQLite's 0018): a key whose
-- job is done, failed or cancelled can be queued again (a rebind that failed for good is
-- queued again by the next start's stale check; a round of variants that made none lets the
-- next round be queued). put_job's ON CONFLICT DO NOTHING covers the partial index too.
ALTER TABLE jobs DROP CONSTRAINT jobs_dedupe_key;
CREATE UNIQUE INDEX jobs_dedupe_open ON jobs (dedupe) WHERE state IN ('pending', 'running');
