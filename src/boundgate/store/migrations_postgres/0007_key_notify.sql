-- Key changes announced (issue #14): a replica trusts a key check it made for a moment
-- (store.key_cache_s) and drops it at once when told, on channel
-- 'boundgate_keys_<schema>' (payload: the key's id), that a key was created, revoked or
-- changed, by any replica or the CLI.
CREATE FUNCTION boundgate_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boundgate_keys_' || current_schema(), NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE ON api_keys
FOR EACH ROW EXECUTE FUNCTION boundgate_keys_changed();
