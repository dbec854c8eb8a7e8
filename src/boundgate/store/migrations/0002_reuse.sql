ALTER TABLE ledger ADD COLUMN reuse TEXT;
ALTER TABLE ledger ADD COLUMN document_id TEXT;
ALTER TABLE ledger ADD COLUMN similarity REAL;
ALTER TABLE ledger ADD COLUMN avoided_wh REAL NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN avoided_gco2 REAL NOT NULL DEFAULT 0;
CREATE TABLE reuse_entries (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    exact TEXT NOT NULL,
    query TEXT NOT NULL,
    answer TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    tenant TEXT NOT NULL,
    created REAL NOT NULL,
    cost_wh REAL NOT NULL,
    cost_gco2 REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_hit REAL,
    vector BLOB NOT NULL,
    embedder TEXT NOT NULL,
    scope_doc TEXT NOT NULL
);
CREATE INDEX reuse_entries_exact ON reuse_entries (exact);
CREATE TABLE reuse_observations (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    entry INTEGER,
    similarity REAL NOT NULL,
    correct INTEGER NOT NULL,
    source TEXT NOT NULL,
    request_id TEXT
);
