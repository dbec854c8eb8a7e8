ALTER TABLE reuse_entries ADD COLUMN request TEXT;
ALTER TABLE reuse_entries ADD COLUMN document_id TEXT;
ALTER TABLE reuse_entries ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reuse_askers (
    entry INTEGER NOT NULL,
    asker TEXT NOT NULL,
    query TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (entry, asker)
);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    entry INTEGER,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    state TEXT NOT NULL,
    supersedes TEXT,
    superseded_by TEXT,
    created REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX documents_entry ON documents (entry);
CREATE TABLE jobs (
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
    dedupe TEXT UNIQUE
);
CREATE INDEX jobs_state ON jobs (state, not_before);
