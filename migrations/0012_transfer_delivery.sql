-- Online delivery as a job the database holds (issue 11): asked for, resumed by whichever server
-- holds its lease after a crash, retried with backoff, its last error shown; and a build's last
-- error, so a batch that stopped building says why.
ALTER TABLE transfers ADD COLUMN send_state TEXT;
ALTER TABLE transfers ADD COLUMN send_error TEXT;
ALTER TABLE transfers ADD COLUMN send_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN send_next_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN sent_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN build_error TEXT;
