-- Budgets and rate limits as shared counters (LimitStore): per (counter, window) the settled
-- usage and the sum of the holds in flight; each hold with its lease.
CREATE TABLE limit_counters (
    counter TEXT NOT NULL,
    window_start REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (counter, window_start)
);
CREATE TABLE limit_holds (
    hold_id TEXT NOT NULL,
    counter TEXT NOT NULL,
    window_start REAL NOT NULL,
    amount INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (hold_id, counter, window_start)
);
CREATE INDEX limit_holds_expiry ON limit_holds (counter, window_start, expires);
-- Today's token and novelty budgets were counted from the ledger until now: carry today's
-- usage over.
INSERT INTO limit_counters (counter, window_start, used, reserved)
SELECT 'tokens:' || tenant, CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0,
       SUM(prompt_tokens + completion_tokens), 0
FROM ledger
WHERE ts >= CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0
  AND COALESCE(reuse, '') NOT LIKE 'hit%'
GROUP BY tenant;
INSERT INTO limit_counters (counter, window_start, used, reserved)
SELECT 'novel:' || tenant, CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0, COUNT(*), 0
FROM ledger
WHERE ts >= CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0
  AND json_extract(extra, '$.novel') = 1 AND outcome = 'ok'
GROUP BY tenant;
