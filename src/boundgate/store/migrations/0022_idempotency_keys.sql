-- A request's Idempotency-Key (POST /v1/batches, POST /v1/files), kept with the object it made
-- in the same transaction: a client retrying a request whose answer it never got (the process
-- died after storing the batch, the connection dropped) sends the key again and gets that
-- object, not a second batch that runs, and spends its energy, twice. Scoped to the tenant and
-- the API key that sent it (key_id '' without one: open mode); kept until it expires (24 h).
CREATE TABLE idempotency_keys (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    object_id TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (tenant, key_id, route, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires);
CREATE INDEX idempotency_keys_object ON idempotency_keys (object_id);
-- The batches not ended, in the order FileStore.stranded_batches reads them: its sweep (every
-- process, every scheduler.replan_s) reads these instead of every batch ever made. Its query
-- repeats this WHERE word for word, which is how SQLite knows the index holds its rows.
CREATE INDEX batches_open ON batches (created, id)
    WHERE json_extract(body, '$.status') NOT IN ('completed', 'failed', 'expired', 'cancelled');
