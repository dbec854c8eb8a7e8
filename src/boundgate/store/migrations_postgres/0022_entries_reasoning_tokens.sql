-- A stored answer's and a creative variant's reasoning tokens (of their completion_tokens),
-- so a hit reports the usage the answer was generated with, reasoning included: a break-it
-- trial's hit on a reasoning model's answer reported its completion_tokens (reasoning
-- counted in) with reasoning_tokens 0. Those stored before count none.
ALTER TABLE reuse_entries ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE variants ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
