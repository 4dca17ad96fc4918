-- The four-property check report (DA/T 70) recorded with each case.
ALTER TABLE cases ADD COLUMN checks_json TEXT NOT NULL DEFAULT '[]';
