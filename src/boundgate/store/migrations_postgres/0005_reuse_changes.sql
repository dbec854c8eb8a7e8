-- The reuse change log (protocols.ChangeFeed): every change to what the reuse layer serves,
-- written by triggers in the transaction that made it, and announced with NOTIFY on channel
-- 'boundgate_reuse_<schema>' at commit. Writers of the log take one transaction-scoped
-- advisory lock per schema before numbering their row, so numbers become visible in commit
-- order and a follower reading "seq > last seen" never skips a row that commits later.
CREATE TABLE reuse_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM clock_timestamp()),
    kind TEXT NOT NULL,
    entry BIGINT,
    ref TEXT,
    label BIGINT
);
-- entry keys handed out across replicas (ChangeFeed.new_entry_key)
CREATE SEQUENCE reuse_entry_keys;
SELECT setval('reuse_entry_keys', (SELECT COALESCE(MAX(key), 0) + 1 FROM reuse_entries), false);
CREATE FUNCTION boundgate_reuse_change(p_kind TEXT, p_entry BIGINT, p_ref TEXT, p_label BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(4, hashtext(current_schema()));
    INSERT INTO reuse_changes (kind, entry, ref, label)
    VALUES (p_kind, p_entry, p_ref, p_label) RETURNING seq INTO s;
    PERFORM pg_notify('boundgate_reuse_' || current_schema(), s::text);
END $$;
CREATE FUNCTION boundgate_reuse_entries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM boundgate_reuse_change('entry', NEW.key, NULL, NULL);
        -- a key stored without new_entry_key (an older gateway, a benchmark's own keys):
        -- the next key handed out is above it
        PERFORM setval('reuse_entry_keys', NEW.key)
        FROM reuse_entry_keys WHERE NEW.key >= last_value;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM boundgate_reuse_change('delete', OLD.key, NULL, NULL);
    ELSIF NEW.revoked IS DISTINCT FROM OLD.revoked
          OR NEW.document_id IS DISTINCT FROM OLD.document_id THEN
        PERFORM boundgate_reuse_change('entry-update', NEW.key, NULL, NULL);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reuse_entries_changed AFTER INSERT OR DELETE OR UPDATE ON reuse_entries
FOR EACH ROW EXECUTE FUNCTION boundgate_reuse_entries_changed();
CREATE FUNCTION boundgate_reuse_variants_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM boundgate_reuse_change('variant', NEW.entry, NEW.exact, NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER reuse_variants_changed AFTER INSERT OR UPDATE ON reuse_question_variants
FOR EACH ROW EXECUTE FUNCTION boundgate_reuse_variants_changed();
CREATE FUNCTION boundgate_reuse_observations_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM boundgate_reuse_change('label', NEW.entry, NULL, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER reuse_observations_added AFTER INSERT ON reuse_observations
FOR EACH ROW EXECUTE FUNCTION boundgate_reuse_observations_added();
CREATE FUNCTION boundgate_documents_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM boundgate_reuse_change('document', NEW.entry, NEW.id, NULL);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER documents_changed AFTER INSERT OR UPDATE ON documents
FOR EACH ROW EXECUTE FUNCTION boundgate_documents_changed();
-- a semantic lookup's best candidate (the verifier's h(t)), as JSON [similarity, density, pair]
CREATE FUNCTION boundgate_ledger_semantic_lookup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM boundgate_reuse_change('lookup', NULL, json_build_array(
        NEW.similarity,
        COALESCE((NEW.extra ->> 'density')::float8, 0),
        (NEW.extra ->> 'pair_score')::float8)::text, NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_semantic_lookup AFTER INSERT ON ledger FOR EACH ROW
WHEN (NEW.extra -> 'semantic_lookup' IN ('1'::jsonb, 'true'::jsonb))
EXECUTE FUNCTION boundgate_ledger_semantic_lookup();
