-- A request's Idempotency-Key (POST /v1/batches, POST /v1/files), kept with the object it made
-- in the same transaction (SQLite's 0022): a client retrying a request whose answer it never
-- got gets that object, not a second batch that runs twice. Scoped to the tenant and the API
-- key that sent it (key_id '' without one: open mode); kept until it expires (24 h).
CREATE TABLE idempotency_keys (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    object_id TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, key_id, route, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires);
CREATE INDEX idempotency_keys_object ON idempotency_keys (object_id);
-- The batches not ended, in the order FileStore.stranded_batches reads them: its sweep (every
-- replica, every scheduler.replan_s) reads these instead of every batch ever made. Its query
-- repeats this WHERE, which is how the planner knows the index holds its rows; the statistics
-- on the status (PostgreSQL 14+; ANALYZE keeps them) tell it how few they are, without which
-- it estimates most batches are not ended and scans them all.
CREATE INDEX batches_open ON batches (created, id)
    WHERE (body::jsonb ->> 'status') NOT IN ('completed', 'failed', 'expired', 'cancelled');
CREATE STATISTICS batches_status ON ((body::jsonb ->> 'status')) FROM batches;
ANALYZE batches;
