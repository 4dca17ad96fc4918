-- Fixity audits (preservation stage): each re-verification of a stored package, and when each
-- case was last verified (the background audit takes the oldest first).
CREATE TABLE fixity_audits (
    audit_id TEXT PRIMARY KEY,
    archive_id TEXT NOT NULL,
    at TEXT NOT NULL,
    ok BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX fixity_audits_at ON fixity_audits (at);
ALTER TABLE cases ADD COLUMN verified_at TEXT;
