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
-- A reservation in one statement, whatever its number of claims (LimitStore.reserve): each
-- claim is one conditional upsert (ON CONFLICT locks the counter row and re-checks its newest
-- version); a claim that does not fit frees its counter's expired holds and tries once more;
-- if it still does not fit, the block's subtransaction undoes the claims taken before it and
-- the claim's index (0-based) is returned. NULL: every claim was taken.
CREATE FUNCTION boundgate_reserve(
    p_hold TEXT, p_counters TEXT[], p_windows DOUBLE PRECISION[], p_amounts BIGINT[],
    p_limits BIGINT[], p_hold_s DOUBLE PRECISION[], p_now DOUBLE PRECISION
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    i INTEGER;
    n INTEGER;
    held BIGINT;
    refused INTEGER;
BEGIN
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_counters, 1), 0) LOOP
            held := CASE WHEN p_hold_s[i] IS NULL THEN 0 ELSE p_amounts[i] END;
            FOR attempt IN 1 .. 2 LOOP
                INSERT INTO limit_counters AS lc (counter, window_start, used, reserved)
                SELECT p_counters[i], p_windows[i], p_amounts[i] - held, held
                WHERE p_amounts[i] <= p_limits[i]
                ON CONFLICT (counter, window_start) DO UPDATE
                    SET used = lc.used + (p_amounts[i] - held), reserved = lc.reserved + held
                    WHERE lc.used + lc.reserved + p_amounts[i] <= p_limits[i];
                GET DIAGNOSTICS n = ROW_COUNT;
                EXIT WHEN n > 0 OR attempt = 2;
                WITH h AS (
                    DELETE FROM limit_holds
                    WHERE counter = p_counters[i] AND window_start = p_windows[i]
                      AND expires < p_now
                    RETURNING amount
                )
                UPDATE limit_counters SET reserved = reserved - (SELECT SUM(amount) FROM h)
                WHERE counter = p_counters[i] AND window_start = p_windows[i]
                  AND EXISTS (SELECT 1 FROM h);
                GET DIAGNOSTICS n = ROW_COUNT;
                EXIT WHEN n = 0;  -- nothing freed: no point trying again
            END LOOP;
            IF n = 0 THEN
                refused := i - 1;
                RAISE EXCEPTION 'claim refused' USING ERRCODE = 'BGR01';
            END IF;
            IF p_hold_s[i] IS NOT NULL THEN
                INSERT INTO limit_holds (hold_id, counter, window_start, amount, expires)
                VALUES (p_hold, p_counters[i], p_windows[i], p_amounts[i], p_now + p_hold_s[i]);
            END IF;
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'BGR01' THEN
        RETURN refused;
    END;
    RETURN NULL;
END
$$;
