//! Prometheus counters, rendered by hand: a handful of atomics need no registry.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub cases_archived: AtomicU64,
    pub cases_duplicate: AtomicU64,
    pub cases_conflict: AtomicU64,
    pub submissions_rejected: AtomicU64,
    pub bytes_archived: AtomicU64,
    pub ingest_seconds_sum_ms: AtomicU64,
    pub ingests_in_flight: AtomicU64,
    pub ingests_streamed: AtomicU64,
    pub fixity_ok: AtomicU64,
    pub fixity_failed: AtomicU64,
    /// Heads of the audit trail this server entered in the log.
    pub audit_heads: AtomicU64,
    pub cases_filed: AtomicU64,
    pub cases_disposed: AtomicU64,
    pub filing_notices: AtomicU64,
    /// Unfiled cases of last year, as the scheduler last saw them.
    pub filing_pending: AtomicU64,
    /// Days until last year's filing deadline (negative once passed), as last seen.
    pub filing_days_left: std::sync::atomic::AtomicI64,
    /// Bytes of transfer files this server delivered online (acknowledged by the receiver).
    pub transfer_sent_bytes: AtomicU64,
    /// Bytes of transfer files this archive took in over `/api/v1/incoming`.
    pub incoming_bytes: AtomicU64,
    problems: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn problem(&self, code: &'static str) {
        if let Ok(mut m) = self.problems.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        counter(
            "guidang_transfer_sent_bytes_total",
            "Bytes of transfer volumes delivered online and acknowledged by the receiver.",
            g(&self.transfer_sent_bytes).to_string(),
        );
        counter(
            "guidang_incoming_bytes_total",
            "Bytes of transfer volumes received online.",
            g(&self.incoming_bytes).to_string(),
        );
        counter(
            "guidang_cases_archived_total",
            "Cases archived (new packages).",
            g(&self.cases_archived).to_string(),
        );
        counter(
            "guidang_cases_duplicate_total",
            "Identical resubmissions answered with the existing case.",
            g(&self.cases_duplicate).to_string(),
        );
        counter(
            "guidang_cases_conflict_total",
            "Submissions refused because the case exists with other content.",
            g(&self.cases_conflict).to_string(),
        );
        counter(
            "guidang_submissions_rejected_total",
            "Submissions rejected with problems.",
            g(&self.submissions_rejected).to_string(),
        );
        counter(
            "guidang_archived_bytes_total",
            "Payload bytes archived.",
            g(&self.bytes_archived).to_string(),
        );
        counter(
            "guidang_ingests_unpacked_while_receiving_total",
            "Packages built while the submission was still arriving.",
            g(&self.ingests_streamed).to_string(),
        );
        counter(
            "guidang_fixity_audits_passed_total",
            "Stored packages re-verified without findings.",
            g(&self.fixity_ok).to_string(),
        );
        counter(
            "guidang_audit_heads_entered_total",
            "Heads of the audit trail this server entered in the transparency log.",
            g(&self.audit_heads).to_string(),
        );
        counter(
            "guidang_fixity_audits_failed_total",
            "Fixity audits that found a stored byte or a record not matching its evidence.",
            g(&self.fixity_failed).to_string(),
        );
        counter(
            "guidang_ingest_seconds_total",
            "Time spent in successful ingests.",
            format!("{:.3}", g(&self.ingest_seconds_sum_ms) as f64 / 1000.0),
        );
        counter(
            "guidang_cases_filed_total",
            "Cases given an archival code by a yearly filing.",
            g(&self.cases_filed).to_string(),
        );
        counter(
            "guidang_cases_disposed_total",
            "Cases whose content was destroyed by an approved disposal.",
            g(&self.cases_disposed).to_string(),
        );
        counter(
            "guidang_filing_notices_total",
            "Filing reports and deadline warnings given.",
            g(&self.filing_notices).to_string(),
        );
        s.push_str(&format!(
            "# HELP guidang_filing_pending Unfiled cases of last year.\n# TYPE guidang_filing_pending gauge\nguidang_filing_pending {}\n",
            g(&self.filing_pending)
        ));
        s.push_str(&format!(
            "# HELP guidang_filing_days_left Days until last year's filing deadline (30 June).\n# TYPE guidang_filing_days_left gauge\nguidang_filing_days_left {}\n",
            self.filing_days_left.load(Ordering::Relaxed)
        ));
        s.push_str("# HELP guidang_ingests_in_flight Ingests being processed.\n# TYPE guidang_ingests_in_flight gauge\n");
        s.push_str(&format!(
            "guidang_ingests_in_flight {}\n",
            g(&self.ingests_in_flight)
        ));
        s.push_str("# HELP guidang_problems_total Problems found in rejected submissions, by code.\n# TYPE guidang_problems_total counter\n");
        if let Ok(m) = self.problems.lock() {
            for (code, n) in m.iter() {
                s.push_str(&format!("guidang_problems_total{{code=\"{code}\"}} {n}\n"));
            }
        }
        s
    }
}
