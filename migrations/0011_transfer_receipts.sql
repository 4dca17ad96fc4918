-- The receiving archive's side of a transfer, and the receipt at the sender (issue 11).

-- At the archive authority: each case received, where its package versions are stored here.
CREATE TABLE received_cases (
    transfer_id TEXT NOT NULL,
    archive_id TEXT NOT NULL,
    archival_code TEXT NOT NULL,
    sender_key_id TEXT NOT NULL,
    volume TEXT NOT NULL,
    versions BIGINT NOT NULL,
    newest_sha256 TEXT NOT NULL,
    keys_json TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (transfer_id, archive_id)
);
CREATE INDEX received_cases_code ON received_cases (archival_code);

-- At the sender: the receipt recorded, and on each case accepted, the transfer and its date.
ALTER TABLE transfers ADD COLUMN receipt_key TEXT;
ALTER TABLE transfers ADD COLUMN received_at TEXT;
ALTER TABLE cases ADD COLUMN transferred_in TEXT;
ALTER TABLE cases ADD COLUMN transferred_at TEXT;
