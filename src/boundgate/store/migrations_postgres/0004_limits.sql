-- Budgets and rate limits as shared counters (LimitStore): per (counter, window) the settled
-- usage and the sum of the holds in flight; each hold with its lease. SQLite's 0011.
CREATE TABLE limit_counters (
    counter TEXT NOT NULL,
    window_start DOUBLE PRECISION NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (counter, window_start)
);
CREATE TABLE limit_holds (
    hold_id TEXT NOT NULL,
    counter TEXT NOT NULL,
    window_start DOUBLE PRECISION NOT NULL,
    amount BIGINT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hold_id, counter, window_start)
);
CREATE INDEX limit_holds_expiry ON limit_holds (counter, window_start, expires);
-- Today's token and novelty budgets were counted from the ledger until now: carry today's
-- usage over.
INSERT INTO limit_counters (counter, window_start, used, reserved)
SELECT 'tokens:' || tenant, floor(extract(epoch FROM now()) / 86400) * 86400,
       SUM(prompt_tokens + completion_tokens), 0
FROM ledger
WHERE ts >= floor(extract(epoch FROM now()) / 86400) * 86400
  AND COALESCE(reuse, '') NOT LIKE 'hit%'
GROUP BY tenant;
INSERT INTO limit_counters (counter, window_start, used, reserved)
SELECT 'novel:' || tenant, floor(extract(epoch FROM now()) / 86400) * 86400, COUNT(*), 0
FROM ledger
WHERE ts >= floor(extract(epoch FROM now()) / 86400) * 86400
  AND extra -> 'novel' IN ('1'::jsonb, 'true'::jsonb) AND outcome = 'ok'
GROUP BY tenant;
