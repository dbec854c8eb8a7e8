-- Dashboard sessions signed out before their cookie expired: the cookie is signed and carries
-- no server state, so a copy taken before "Sign out" stayed valid until its own expiry (a
-- trial). A signed-out session id is refused by every process sharing the store until
-- `until` (epoch s, at least the cookie's expiry); rows past it are dropped on the next sign-out.
CREATE TABLE dashboard_signouts (
    session_id TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE INDEX dashboard_signouts_until ON dashboard_signouts (until);
