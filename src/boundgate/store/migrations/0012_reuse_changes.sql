-- The reuse change log (protocols.ChangeFeed): every change to what the reuse layer serves,
-- written by triggers in the transaction that made it, so every process sharing this file
-- (worker processes, the CLI) can follow it by sequence number. SQLite has one writer at a
-- time, so rowid order is commit order; AUTOINCREMENT never reuses a number.
CREATE TABLE reuse_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    kind TEXT NOT NULL,
    entry INTEGER,
    ref TEXT,
    label INTEGER
);
-- entry keys handed out across processes (ChangeFeed.new_entry_key)
CREATE TABLE reuse_entry_keys (next INTEGER NOT NULL);
INSERT INTO reuse_entry_keys (next) SELECT COALESCE(MAX(key), 0) FROM reuse_entries;
CREATE TRIGGER reuse_entries_inserted AFTER INSERT ON reuse_entries
BEGIN INSERT INTO reuse_changes (kind, entry) VALUES ('entry', NEW.key); END;
CREATE TRIGGER reuse_entries_deleted AFTER DELETE ON reuse_entries
BEGIN INSERT INTO reuse_changes (kind, entry) VALUES ('delete', OLD.key); END;
CREATE TRIGGER reuse_entries_updated AFTER UPDATE OF revoked, document_id ON reuse_entries
WHEN OLD.revoked IS NOT NEW.revoked OR OLD.document_id IS NOT NEW.document_id
BEGIN INSERT INTO reuse_changes (kind, entry) VALUES ('entry-update', NEW.key); END;
CREATE TRIGGER reuse_variants_inserted AFTER INSERT ON reuse_question_variants
BEGIN INSERT INTO reuse_changes (kind, entry, ref) VALUES ('variant', NEW.entry, NEW.exact); END;
CREATE TRIGGER reuse_variants_updated AFTER UPDATE ON reuse_question_variants
BEGIN INSERT INTO reuse_changes (kind, entry, ref) VALUES ('variant', NEW.entry, NEW.exact); END;
CREATE TRIGGER reuse_observations_inserted AFTER INSERT ON reuse_observations
BEGIN INSERT INTO reuse_changes (kind, entry, label) VALUES ('label', NEW.entry, NEW.id); END;
CREATE TRIGGER documents_inserted AFTER INSERT ON documents
BEGIN INSERT INTO reuse_changes (kind, entry, ref) VALUES ('document', NEW.entry, NEW.id); END;
CREATE TRIGGER documents_state_updated AFTER UPDATE OF state ON documents
WHEN OLD.state IS NOT NEW.state
BEGIN INSERT INTO reuse_changes (kind, entry, ref) VALUES ('document', NEW.entry, NEW.id); END;
-- a semantic lookup's best candidate (the verifier's h(t)), as JSON [similarity, density, pair]
CREATE TRIGGER ledger_semantic_lookup AFTER INSERT ON ledger
WHEN json_extract(NEW.extra, '$.semantic_lookup') = 1
BEGIN INSERT INTO reuse_changes (kind, ref) VALUES ('lookup', json_array(NEW.similarity, COALESCE(json_extract(NEW.extra, '$.density'), 0), json_extract(NEW.extra, '$.pair_score'))); END;
