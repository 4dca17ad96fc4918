//! Transfer batches before transfer: drafts, their cases, decisions and approval.
