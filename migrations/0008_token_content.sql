-- An auditor token may be allowed to read package content (files, whole packages); without it an
-- auditor reads the evidence of a package only, never personal data.
ALTER TABLE tokens ADD COLUMN content INTEGER NOT NULL DEFAULT 0;
