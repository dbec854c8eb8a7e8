-- A semantic lookup's change carries its id (SQLite's 0016): the ledger row's
-- extra.lookup_id, a random 63-bit integer the gateway gives each lookup, in the log's label
-- column, so the process that made it knows its own lookup when the log echoes it, by id and
-- not by its values, which most misses share. NULL for rows of an older gateway. (A row
-- replaced under the same id, ON CONFLICT DO UPDATE, fires no insert trigger: no second
-- change.)
CREATE OR REPLACE FUNCTION boundgate_ledger_semantic_lookup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM boundgate_reuse_change('lookup', NULL, json_build_array(
        NEW.similarity,
        COALESCE((NEW.extra ->> 'density')::float8, 0),
        (NEW.extra ->> 'pair_score')::float8)::text,
        (NEW.extra ->> 'lookup_id')::bigint);
    RETURN NULL;
END $$;
