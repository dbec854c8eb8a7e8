-- Write-ahead notes of requests in progress (LedgerStore.open_request): a generation's
-- ledger row as it would read if its process died now (outcome interrupted), noted before
-- the model starts and before a stream's first byte, held by its process under a lease it
-- renews. Recording the request's own row removes its note in the same transaction (the
-- trigger); a note whose lease ran out becomes its ledger row (recover_requests), so a
-- request accepted by a process killed mid-answer still has a row.
CREATE TABLE open_requests (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until REAL NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX open_requests_lease ON open_requests (lease_until);
CREATE TRIGGER ledger_closes_open_request AFTER INSERT ON ledger
BEGIN DELETE FROM open_requests WHERE id = NEW.id; END;
