-- Who did what, when, with what outcome: every call that reads a package or changes anything.
-- Rows are hash-chained (hash = SHA-256(prev_hash ‖ the row's fields)); the head is entered in
-- the transparency log periodically, so a rewritten trail is evident.
CREATE TABLE audit_trail (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_trail_at ON audit_trail (at);
