-- Retention rules, yearly filing with archival codes, completeness declarations, holds and
-- disposal (issue 4). TEXT and BIGINT only, as everywhere: runs unchanged on SQLite and PostgreSQL.

-- Each PUT of the rule set is a new version; cases record the version that set their retention.
CREATE TABLE retention_rulesets (
    version BIGINT PRIMARY KEY,
    rules_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
ALTER TABLE cases ADD COLUMN retention_rule_version BIGINT;
ALTER TABLE cases ADD COLUMN retention_basis TEXT;

-- Filing: the batch a case was filed in, when, whether late, and (for a case the filing check
-- refused) why and in which batch.
ALTER TABLE cases ADD COLUMN filing_batch TEXT;
ALTER TABLE cases ADD COLUMN filed_at TEXT;
ALTER TABLE cases ADD COLUMN filing_late BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN filing_problem TEXT;
ALTER TABLE cases ADD COLUMN filing_problem_batch TEXT;
-- Recorded at ingest from now on (the filing register needs them for every case of a year);
-- cases archived before are counted once here.
ALTER TABLE cases ADD COLUMN file_count BIGINT;
ALTER TABLE cases ADD COLUMN file_bytes BIGINT;
UPDATE cases SET file_count = (SELECT COUNT(*) FROM case_files f WHERE f.archive_id = cases.archive_id),
    file_bytes = (SELECT COALESCE(SUM(f.size), 0) FROM case_files f WHERE f.archive_id = cases.archive_id);
ALTER TABLE cases ADD COLUMN disposed_at TEXT;
ALTER TABLE cases ADD COLUMN disposal_list TEXT;
CREATE UNIQUE INDEX cases_archival_code ON cases (archival_code);
CREATE INDEX cases_filing_queue ON cases (year, status, transact_time, archive_id);
-- The queue index leads with the year: the old one only costs every update.
DROP INDEX cases_year;
CREATE INDEX cases_filing_batch ON cases (filing_batch, archival_code);

CREATE TABLE filing_batches (
    batch_id TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    origin TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    cases BIGINT NOT NULL DEFAULT 0,
    files BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    online BIGINT NOT NULL DEFAULT 0,
    offline BIGINT NOT NULL DEFAULT 0,
    late BIGINT NOT NULL DEFAULT 0,
    refused BIGINT NOT NULL DEFAULT 0,
    documents_json TEXT,
    CONSTRAINT filing_batches_seq UNIQUE (year, seq)
);

-- The last item number given in each archival-code class: updated in the transaction that codes
-- the cases, so a crash leaves neither a gap nor a duplicate.
CREATE TABLE archival_counters (
    class TEXT PRIMARY KEY,
    last_item BIGINT NOT NULL
);

-- Exclusive, expiring claims (the yearly filing) shared by every server on the database.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Deadline notices already given, so that each is given once whichever server gives it.
CREATE TABLE filing_notices (
    year BIGINT NOT NULL,
    notice TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (year, notice)
);

-- What a case system declares it completed in a year: case keys, or counts per task_code.
CREATE TABLE filing_expected (
    year BIGINT NOT NULL,
    social_code TEXT NOT NULL,
    task_code TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (year, social_code, task_code, project_id)
);
CREATE TABLE filing_expected_counts (
    year BIGINT NOT NULL,
    social_code TEXT NOT NULL,
    task_code TEXT NOT NULL,
    expected BIGINT NOT NULL,
    PRIMARY KEY (year, social_code, task_code)
);

-- Submissions refused, by case key where the metadata could be read: the filing status counts
-- cases of a year that were refused and never archived since.
CREATE TABLE rejections (
    rejection_id TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    social_code TEXT NOT NULL,
    task_code TEXT NOT NULL,
    project_id TEXT NOT NULL,
    codes TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX rejections_year ON rejections (year);

CREATE TABLE holds (
    hold_id TEXT PRIMARY KEY,
    archive_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    released_by TEXT,
    released_at TEXT,
    release_reason TEXT
);
CREATE INDEX holds_archive ON holds (archive_id);

CREATE TABLE disposal_lists (
    list_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    opinion TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_by_name TEXT NOT NULL,
    proposed_at TEXT NOT NULL,
    decided_by TEXT,
    decided_by_name TEXT,
    decided_at TEXT,
    decision_note TEXT,
    executed_by TEXT,
    executed_at TEXT,
    documents_json TEXT
);
CREATE TABLE disposal_items (
    list_id TEXT NOT NULL,
    archive_id TEXT NOT NULL,
    appraisal TEXT NOT NULL,
    outcome TEXT,
    PRIMARY KEY (list_id, archive_id)
);
CREATE INDEX disposal_items_archive ON disposal_items (archive_id);
