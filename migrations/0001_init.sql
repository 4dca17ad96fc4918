-- Written to run unchanged on SQLite and PostgreSQL: TEXT and BIGINT only, no auto-increment.
-- Times are RFC 3339 text in UTC; *_epoch columns hold seconds for range queries.

CREATE TABLE cases (
    archive_id TEXT PRIMARY KEY,
    social_code TEXT NOT NULL,
    task_code TEXT NOT NULL,
    project_id TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    year BIGINT NOT NULL,
    task_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    catalog_code TEXT,
    project_name TEXT NOT NULL,
    region_code TEXT NOT NULL,
    lead_department TEXT NOT NULL,
    result TEXT NOT NULL,
    security_classification TEXT NOT NULL,
    retention_proposed TEXT,
    retention TEXT,
    archival_code TEXT,
    receive_time TEXT NOT NULL,
    transact_time TEXT NOT NULL,
    source TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    package_key TEXT NOT NULL,
    package_size BIGINT NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    signature_json TEXT NOT NULL,
    key_id TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    warnings_json TEXT NOT NULL,
    archived_at TEXT NOT NULL,
    CONSTRAINT cases_key UNIQUE (social_code, task_code, project_id)
);
CREATE INDEX cases_year ON cases (year);
CREATE INDEX cases_task_code ON cases (task_code);
CREATE INDEX cases_archived_at ON cases (archived_at);

CREATE TABLE case_files (
    archive_id TEXT NOT NULL REFERENCES cases (archive_id),
    path TEXT NOT NULL,
    role TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    sm3 TEXT NOT NULL,
    format TEXT NOT NULL,
    format_version TEXT,
    mime TEXT NOT NULL,
    note TEXT,
    pkg_offset BIGINT NOT NULL,
    PRIMARY KEY (archive_id, path)
);

CREATE TABLE case_events (
    event_id TEXT PRIMARY KEY,
    archive_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    agent TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX case_events_archive ON case_events (archive_id);

CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    org TEXT,
    name TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);

-- Written before a package is committed to storage and removed in the transaction that records
-- the case: whatever an interrupted ingest left in storage is found from here at the next start.
CREATE TABLE ingest_intents (
    archive_id TEXT PRIMARY KEY,
    object_key TEXT NOT NULL,
    created_epoch BIGINT NOT NULL
);
