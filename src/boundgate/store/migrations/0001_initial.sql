CREATE TABLE ledger (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    tenant TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    backend TEXT,
    key_id TEXT,
    user TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    error_code TEXT,
    latency_ms REAL NOT NULL DEFAULT 0,
    wh REAL NOT NULL DEFAULT 0,
    wh_low REAL NOT NULL DEFAULT 0,
    wh_high REAL NOT NULL DEFAULT 0,
    method TEXT NOT NULL DEFAULT 'estimate',
    gco2 REAL NOT NULL DEFAULT 0,
    grid_zone TEXT,
    gco2_per_kwh REAL,
    extra TEXT
);
CREATE INDEX ledger_ts ON ledger (ts);
CREATE INDEX ledger_tenant_ts ON ledger (tenant, ts);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER,
    daily_tokens INTEGER,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL
);
