-- Package versions (digitised copies, sealed filing facts), and what is decided before transfer:
-- draft batches, their cases, classification decisions and access opinions (issue 10).
-- TEXT and BIGINT only, as everywhere: runs unchanged on SQLite and PostgreSQL.

-- Every version of every case's package. `cases` keeps describing the newest one.
CREATE TABLE package_versions (
    archive_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    package_key TEXT NOT NULL,
    package_size BIGINT NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    previous_sha256 TEXT,
    signature_json TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    detail_json TEXT,
    PRIMARY KEY (archive_id, version)
);
INSERT INTO package_versions (archive_id, version, kind, package_key, package_size, tagmanifest_sha256,
    previous_sha256, signature_json, key_id, created_at, created_by, detail_json)
    SELECT archive_id, 1, 'submission', package_key, package_size, tagmanifest_sha256, NULL,
        signature_json, key_id, archived_at, submitted_by, NULL FROM cases;

-- Which version holds a file (its offset is inside that version's package).
ALTER TABLE case_files ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- The case has paper originals of this many pages (metadata `paper_pages`), and how many pages
-- of digitised copies it holds.
ALTER TABLE cases ADD COLUMN paper_pages BIGINT;
ALTER TABLE cases ADD COLUMN digitised_pages BIGINT NOT NULL DEFAULT 0;
-- The filing batch whose facts (archival code, batch, time) a version of the package signs.
ALTER TABLE cases ADD COLUMN sealed_filing TEXT;

CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    filters_json TEXT NOT NULL,
    state TEXT NOT NULL,
    prepared_by TEXT NOT NULL,
    prepared_by_name TEXT,
    created_at TEXT NOT NULL,
    approved_by TEXT,
    approved_by_name TEXT,
    approved_at TEXT,
    approved_digest TEXT,
    reopened BIGINT NOT NULL DEFAULT 0,
    rules_json TEXT NOT NULL DEFAULT '[]'
);

-- A case is in at most one batch that is not finished: the unique index on `open_key` (the
-- archive id while the batch is open, NULL after) makes a second claim fail.
CREATE TABLE transfer_cases (
    transfer_id TEXT NOT NULL,
    archive_id TEXT NOT NULL,
    open_key TEXT,
    PRIMARY KEY (transfer_id, archive_id)
);
CREATE UNIQUE INDEX transfer_cases_open ON transfer_cases (open_key);
CREATE INDEX transfer_cases_archive ON transfer_cases (archive_id);

CREATE TABLE transfer_excluded (
    transfer_id TEXT NOT NULL,
    archive_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (transfer_id, archive_id)
);

CREATE TABLE transfer_decisions (
    transfer_id TEXT NOT NULL,
    archive_id TEXT NOT NULL,
    classification TEXT NOT NULL,
    level TEXT NOT NULL,
    basis TEXT NOT NULL,
    access TEXT NOT NULL,
    access_reason TEXT,
    access_until BIGINT,
    access_note TEXT,
    source TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (transfer_id, archive_id)
);

-- The newest audit of each case in a transfer batch (a failing one blocks the batch).
CREATE INDEX fixity_audits_archive ON fixity_audits (archive_id, at);
