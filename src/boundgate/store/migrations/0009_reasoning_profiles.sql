-- reasoning tokens (of completion_tokens) per request, for reasoning models' daily budget
ALTER TABLE ledger ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
-- a key's own daily reasoning-token budget (NULL: limits.daily_reasoning_tokens)
ALTER TABLE api_keys ADD COLUMN daily_reasoning_tokens INTEGER;
-- measured energy profiles of local models (boundgate models profile), one row per run
CREATE TABLE energy_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    measured_at REAL NOT NULL,
    host TEXT NOT NULL,
    cpu TEXT NOT NULL,
    method TEXT NOT NULL,
    prompt_wh_per_1k_tokens REAL NOT NULL,
    prompt_wh_per_1k_tokens_low REAL NOT NULL,
    prompt_wh_per_1k_tokens_high REAL NOT NULL,
    output_wh_per_1k_tokens REAL NOT NULL,
    output_wh_per_1k_tokens_low REAL NOT NULL,
    output_wh_per_1k_tokens_high REAL NOT NULL,
    prompt_tokens_per_s REAL NOT NULL,
    output_tokens_per_s REAL NOT NULL,
    runs INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);
CREATE INDEX energy_profiles_model ON energy_profiles (model, measured_at);
