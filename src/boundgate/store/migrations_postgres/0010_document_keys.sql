-- The key each imported document was verified with at import (SQLite's 0015): its issuer's
-- Ed25519 public key (PEM), so later checks (docs verify, export, the dashboard) verify it
-- with that key; NULL: signed by this gateway's own key (every document bound here, and all
-- rows before).
ALTER TABLE documents ADD COLUMN public_key TEXT;
