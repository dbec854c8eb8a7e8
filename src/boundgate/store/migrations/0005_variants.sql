CREATE TABLE variants (
    id INTEGER PRIMARY KEY,
    exact TEXT NOT NULL,
    answer TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_wh REAL NOT NULL,
    cost_gco2 REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX variants_exact ON variants (exact);
CREATE TABLE variant_serves (
    variant INTEGER NOT NULL,
    asker TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (variant, asker)
);
CREATE TABLE novel_asks (
    exact TEXT NOT NULL,
    asker TEXT NOT NULL,
    request TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (exact, asker)
);
