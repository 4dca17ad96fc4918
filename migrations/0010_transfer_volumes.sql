-- Transfer volumes built from an approved batch (issue 11). A row is written when its volume is
-- stored, so a build that stopped resumes at the first volume without one.
CREATE TABLE transfer_volumes (
    transfer_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    name TEXT NOT NULL,
    package_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    cases BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    tagmanifest_sm3 TEXT NOT NULL,
    built_at TEXT NOT NULL,
    PRIMARY KEY (transfer_id, n)
);
ALTER TABLE transfers ADD COLUMN volume_size BIGINT;
ALTER TABLE transfers ADD COLUMN volumes_planned BIGINT;
ALTER TABLE transfers ADD COLUMN built_at TEXT;
ALTER TABLE transfers ADD COLUMN build_warnings TEXT;
