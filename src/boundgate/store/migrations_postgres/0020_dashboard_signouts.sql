-- Dashboard sessions signed out before their cookie expired (SQLite's 0025): a signed-out
-- session id is refused by every replica until `until` (epoch s, at least the cookie's
-- expiry); rows past it are dropped on the next sign-out.
CREATE TABLE dashboard_signouts (
    session_id TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL
);
CREATE INDEX dashboard_signouts_until ON dashboard_signouts (until);
