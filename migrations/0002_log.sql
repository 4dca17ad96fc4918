-- The transparency log (CONTRACT.md §5): entries, the stored hashes of perfect subtrees, and the
-- signed checkpoints published. Rows are only ever inserted.

CREATE TABLE log_entries (
    idx BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    archive_id TEXT,
    entry TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX log_entries_archive ON log_entries (archive_id);

CREATE TABLE log_hashes (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_checkpoints (
    size BIGINT PRIMARY KEY,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);

ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'package';
