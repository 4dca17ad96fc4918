-- Browser console sessions (issue 12): a signed-in token's session, found by the SHA-256 of the
-- cookie's random value (the cookie itself is never stored), with its CSRF token and times for
-- the idle and absolute expiry. A revoked or expired token ends its sessions: every request
-- looks the token up again.
CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
