-- Tokens expire (optional) and record when they were last used (at most once a minute).
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
