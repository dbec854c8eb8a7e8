-- Write-ahead notes of requests in progress (SQLite's 0014; LedgerStore.open_request): a
-- generation's ledger row as it would read if its replica died now (outcome interrupted),
-- held under a lease its replica renews. Recording the request's own row (insert, or the
-- update of ON CONFLICT) removes its note in the same transaction; a note whose lease ran out
-- becomes its ledger row (recover_requests).
CREATE TABLE open_requests (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX open_requests_lease ON open_requests (lease_until);
CREATE FUNCTION boundgate_ledger_closes_open_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM open_requests WHERE id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_closes_open_request AFTER INSERT OR UPDATE ON ledger FOR EACH ROW
EXECUTE FUNCTION boundgate_ledger_closes_open_request();
