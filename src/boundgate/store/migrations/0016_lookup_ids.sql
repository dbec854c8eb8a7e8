-- A semantic lookup's change carries its id (the ledger row's extra.lookup_id, a random
-- 63-bit integer the gateway gives each lookup) in the log's label column, so the process that
-- made it knows its own lookup when the log echoes it, by id and not by its values, which most
-- misses share. NULL for rows of an older gateway. A row replaced under the same id (INSERT OR
-- REPLACE fires insert triggers: a streamed hit's row amended to cancelled) logs its lookup
-- once: it was counted when first written.
DROP TRIGGER ledger_semantic_lookup;
CREATE INDEX reuse_changes_lookup_id ON reuse_changes (label) WHERE kind = 'lookup';
CREATE TRIGGER ledger_semantic_lookup AFTER INSERT ON ledger
WHEN json_extract(NEW.extra, '$.semantic_lookup') = 1
AND NOT EXISTS (SELECT 1 FROM reuse_changes WHERE kind = 'lookup' AND label = json_extract(NEW.extra, '$.lookup_id'))
BEGIN INSERT INTO reuse_changes (kind, ref, label) VALUES ('lookup', json_array(NEW.similarity, COALESCE(json_extract(NEW.extra, '$.density'), 0), json_extract(NEW.extra, '$.pair_score')), json_extract(NEW.extra, '$.lookup_id')); END;
