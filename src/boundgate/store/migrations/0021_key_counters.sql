-- Limits are a key's and are counted per key (tokens:key:<id>, reasoning:key:<id>,
-- rpm:key:<id>; the tenant's own counters, tokens:<tenant>, count only work done without a
-- key's limits). Carry today's usage of each key over from the ledger, so a database migrated
-- mid-day does not hand each key a fresh budget. The tenants' counters keep what they counted
-- (their keys' usage too): their rest of today is over-counted, never under.
INSERT OR IGNORE INTO limit_counters (counter, window_start, used, reserved)
SELECT 'tokens:key:' || key_id, CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0,
       SUM(prompt_tokens + completion_tokens), 0
FROM ledger
WHERE ts >= CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0
  AND key_id IS NOT NULL AND COALESCE(reuse, '') NOT LIKE 'hit%'
GROUP BY key_id;
INSERT OR IGNORE INTO limit_counters (counter, window_start, used, reserved)
SELECT 'reasoning:key:' || key_id, CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0,
       SUM(reasoning_tokens), 0
FROM ledger
WHERE ts >= CAST(strftime('%s', 'now') AS INTEGER) / 86400 * 86400.0
  AND key_id IS NOT NULL AND COALESCE(reuse, '') NOT LIKE 'hit%' AND reasoning_tokens > 0
GROUP BY key_id;
