-- Entries found by the document they serve (SQLite's 0020): a revocation revokes every entry
-- pointed at the document (DocumentStore.revoke_document), not only the one the document
-- names. Bound entries only: the index stays as small as the documents.
CREATE INDEX reuse_entries_document ON reuse_entries (document_id) WHERE document_id IS NOT NULL;
