//! Fixity audits (DA/T 70 preservation stage): a stored package is re-verified where it lies —
//! streamed by ranged reads, never copied or unpacked — against its own manifests, its signature,
//! its entry in the transparency log, and the database's record of it. A background job audits the
//! least recently verified packages first, within a byte budget per hour.

use serde::Serialize;
use serde_json::json;

use std::sync::Arc;

use crate::db::cases::CaseRow;
use crate::db::{Db, DbError};
use crate::evidence::Evidence;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::tasks::{Leased, Stop};
use crate::verify::{Check, Status, verify_reader};

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub audit_id: String,
    pub archive_id: String,
    pub at: String,
    pub ok: bool,
    pub bytes: u64,
    /// What does not match, in words.
    pub findings: Vec<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("object store: {0}")]
    Store(String),
}

/// How long the background audit waits when nothing is due.
const IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The fixity service: audits of stored packages, and reconciliation of the database with the
/// transparency log.
pub struct Fixity {
    db: Db,
    store: Store,
    evidence: Evidence,
    keys: Arc<Keys>,
    metrics: Arc<Metrics>,
}

impl Fixity {
    pub fn new(
        db: Db,
        store: Store,
        evidence: Evidence,
        keys: Arc<Keys>,
        metrics: Arc<Metrics>,
    ) -> Fixity {
        Fixity {
            db,
            store,
            evidence,
            keys,
            metrics,
        }
    }

    /// Re-verifies one case's stored package now and records the result.
    pub async fn audit_case(&self, case: &CaseRow) -> Result<Audit, AuditError> {
        audit_case(self, case).await
    }

    /// Recent audits, newest first; `failed_only` for the ones that found something.
    pub async fn list(&self, failed_only: bool, limit: i64) -> Result<Vec<AuditLine>, DbError> {
        list(&self.db, failed_only, limit).await
    }

    /// Re-verifies a case's package now at `who`'s request, entered in the audit trail.
    pub async fn verify(
        &self,
        who: &crate::auth::Principal,
        case: &CaseRow,
    ) -> Result<Audit, AuditError> {
        let a = audit_case(self, case).await?;
        let outcome = if a.ok { "ok" } else { "findings" };
        self.evidence
            .audit(who, "verify", &case.archive_id, outcome)
            .await;
        Ok(a)
    }

    /// [`Fixity::reconcile`] at `who`'s request, entered in the audit trail.
    pub async fn reconcile_for(
        &self,
        who: &crate::auth::Principal,
    ) -> Result<Vec<String>, DbError> {
        let findings = self.reconcile().await?;
        let outcome = if findings.is_empty() {
            "consistent"
        } else {
            "findings"
        };
        self.evidence.audit(who, "reconcile", "log", outcome).await;
        Ok(findings)
    }

    /// Checks the database against the log and the log against its published checkpoint; a
    /// finding counts as a failed audit and is logged.
    pub async fn reconcile(&self) -> Result<Vec<String>, DbError> {
        let findings = crate::evidence::log::reconcile(&self.db, self.evidence.log()).await?;
        if !findings.is_empty() {
            self.metrics
                .fixity_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(findings = ?findings, "the database and the transparency log disagree");
        }
        Ok(findings)
    }
}

async fn audit_case(fixity: &Fixity, case: &CaseRow) -> Result<Audit, AuditError> {
    let keys = fixity.keys.published().await?;
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    let mut bytes = 0u64;
    let files = fixity.db.case_files(&case.archive_id).await?;
    let versions = fixity.db.versions(&case.archive_id).await?;
    let several = versions.len() > 1;
    let newest = versions.last().map(|v| v.tagmanifest_sha256.clone());
    if newest.as_deref() != Some(case.tagmanifest_sha256.as_str()) {
        findings.push("the case row's package digest is not its newest version's".into());
    }
    // Every version: each is a complete bag that must verify alone, be in the log, and sign the
    // tag manifest of the version before it.
    let mut before: Option<String> = None;
    for v in &versions {
        let at = |m: String| {
            if several {
                format!("version {}: {m}", v.version)
            } else {
                m
            }
        };
        let proof = fixity
            .evidence
            .log()
            .proof_for_version(&case.archive_id, &v.tagmanifest_sha256)
            .await?
            .map(|p| p.format());
        if proof.is_none() {
            findings.push(at("the case has no entry in the transparency log".into()));
        }
        let report = match fixity.store.size(&v.package_key).await {
            Ok(size) => {
                bytes += size;
                let reader =
                    fixity
                        .store
                        .reader(&v.package_key, size, tokio::runtime::Handle::current());
                let name = v.package_key.clone();
                let (keys2, proof2) = (keys.clone(), proof.clone());
                let report = tokio::task::spawn_blocking(move || {
                    verify_reader(&name, Box::new(reader), Some(&keys2), proof2.as_deref())
                })
                .await
                .map_err(|e| AuditError::Store(e.to_string()))?;
                Some(report)
            }
            Err(e) => {
                findings.push(at(format!("the stored package cannot be read: {e}")));
                None
            }
        };
        if let Some(r) = &report {
            for c in r.checks.iter().filter(|c| c.status == Status::Fail) {
                findings.push(at(format!("{}: {}", c.check, c.detail)));
            }
            if r.tagmanifest_sha256.as_deref() != Some(v.tagmanifest_sha256.as_str()) {
                findings.push(at(
                    "the database's package digest differs from the stored package's tag manifest"
                        .into(),
                ));
            }
            if r.version != v.version
                || r.previous.as_ref().map(|p| &p.1) != before.as_ref()
                || v.previous_sha256 != before
            {
                findings.push(at(format!(
                    "the package does not extend the version before it (it says version {} after {:?})",
                    r.version, r.previous
                )));
            }
            for f in files.iter().filter(|f| f.version == v.version) {
                let key = if f.version == 1 {
                    format!("data/submission/{}", f.path)
                } else {
                    format!("data/{}", f.path)
                };
                if r.manifest_sha256.get(&key) != Some(&f.sha256) {
                    findings.push(at(format!(
                        "the database's SHA-256 of {} differs from the package manifest",
                        f.path
                    )));
                }
            }
            checks.extend(r.checks.iter().cloned().map(|mut c| {
                if several {
                    c.detail = format!("version {}: {}", v.version, c.detail);
                }
                c
            }));
        }
        before = Some(v.tagmanifest_sha256.clone());
    }
    if versions.is_empty() {
        findings.push("the case has no package version recorded".into());
    }
    let at = crate::db::now_rfc3339();
    let audit = Audit {
        audit_id: uuid::Uuid::now_v7().to_string(),
        archive_id: case.archive_id.clone(),
        at: at.clone(),
        ok: findings.is_empty(),
        bytes,
        findings,
        checks,
    };
    record(&fixity.db, &audit).await?;
    if audit.ok {
        fixity
            .metrics
            .fixity_ok
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        fixity
            .metrics
            .fixity_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(archive_id = %case.archive_id, findings = ?audit.findings, "fixity audit FAILED");
        let entry = format!("guidang-fixity-failed-v1\n{}\n{}\n", case.archive_id, at);
        fixity.evidence.log_event("fixity_failed", entry).await?;
    }
    Ok(audit)
}

async fn record(db: &Db, a: &Audit) -> Result<(), DbError> {
    db.record_audit(&crate::db::fixity::AuditRow {
        audit_id: a.audit_id.clone(),
        archive_id: a.archive_id.clone(),
        at: a.at.clone(),
        ok: a.ok as i64,
        bytes: a.bytes as i64,
        detail: json!({"findings": a.findings, "checks": a.checks}).to_string(),
    })
    .await
}

/// One line of `GET /api/v1/audits`.
#[derive(Debug, Serialize)]
pub struct AuditLine {
    pub audit_id: String,
    pub archive_id: String,
    pub at: String,
    pub ok: bool,
    pub bytes: i64,
    pub findings: serde_json::Value,
}

async fn list(db: &Db, failed_only: bool, limit: i64) -> Result<Vec<AuditLine>, DbError> {
    Ok(db
        .audits(failed_only, limit)
        .await?
        .into_iter()
        .map(|r| {
            let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
            AuditLine {
                audit_id: r.audit_id,
                archive_id: r.archive_id,
                at: r.at,
                ok: r.ok != 0,
                bytes: r.bytes,
                findings: detail["findings"].clone(),
            }
        })
        .collect())
}

/// The background audit: least recently verified first, each package at most once per
/// `min_interval`, at most `bytes_per_hour`; and hourly, reconciliation. One server of the
/// deployment does it at a time: the holder of the `fixity-audit` lease, renewed as it goes.
pub async fn run_background(
    fixity: Arc<Fixity>,
    lease: Leased,
    bytes_per_hour: u64,
    min_interval: std::time::Duration,
    mut stop: Stop,
) {
    const LEASE_MS: u64 = 120_000;
    let hour = std::time::Duration::from_secs(3600);
    let mut window: Option<std::time::Instant> = None;
    let mut spent = 0u64;
    while !stop.is_stopped() {
        match crate::db::lease::Lease::acquire_ms(&lease.db, lease.lease, &lease.owner, LEASE_MS)
            .await
        {
            Ok(Ok(_held)) => {}
            Ok(Err(_other)) => {
                // Another server audits; look again when its lease could have lapsed.
                window = None;
                stop.sleep(std::time::Duration::from_millis(LEASE_MS / 2))
                    .await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "fixity audit: cannot take the lease");
                stop.sleep(IDLE).await;
                continue;
            }
        }
        if window.is_none_or(|w| w.elapsed() >= hour) {
            window = Some(std::time::Instant::now());
            spent = 0;
            if let Err(e) = fixity.reconcile().await {
                tracing::error!(error = %e, "reconciliation could not run");
            }
        }
        if spent >= bytes_per_hour {
            let rest = window.map_or(hour, |w| hour.saturating_sub(w.elapsed()));
            stop.sleep(rest.min(std::time::Duration::from_millis(LEASE_MS / 2)))
                .await;
            continue;
        }
        let before = (chrono::Utc::now()
            - chrono::Duration::from_std(min_interval).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let next = match fixity.db.next_to_verify(&before).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "fixity audit: cannot pick a case");
                None
            }
        };
        let Some(case) = next else {
            stop.sleep(IDLE).await;
            continue;
        };
        match fixity.audit_case(&case).await {
            Ok(a) => spent += a.bytes.max(1),
            Err(e) => {
                tracing::error!(error = %e, archive_id = %case.archive_id, "fixity audit could not run");
                stop.sleep(std::time::Duration::from_secs(60)).await;
            }
        }
    }
}
