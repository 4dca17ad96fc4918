//! Fixity audits (DA/T 70 preservation stage): a stored package is re-verified where it lies —
//! streamed by ranged reads, never copied or unpacked — against its own manifests, its signature,
//! its entry in the transparency log, and the database's record of it. A background job audits the
//! least recently verified packages first, within a byte budget per hour.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::archive::Archive;
use crate::db::cases::CaseRow;
use crate::db::{Db, DbError};
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

/// Re-verifies one case's stored package now and records the result.
pub async fn audit_case(archive: &Archive, case: &CaseRow) -> Result<Audit, AuditError> {
    let keys = archive.keys().await?;
    let proof = archive
        .log
        .proof_for_case(&case.archive_id)
        .await?
        .map(|p| p.format());
    let mut findings = Vec::new();
    let (report, bytes) = match archive.store.size(&case.package_key).await {
        Ok(size) => {
            let reader =
                archive
                    .store
                    .reader(&case.package_key, size, tokio::runtime::Handle::current());
            let name = case.package_key.clone();
            let (keys2, proof2) = (keys.clone(), proof.clone());
            let report = tokio::task::spawn_blocking(move || {
                verify_reader(&name, Box::new(reader), Some(&keys2), proof2.as_deref())
            })
            .await
            .map_err(|e| AuditError::Store(e.to_string()))?;
            (Some(report), size)
        }
        Err(e) => {
            findings.push(format!("the stored package cannot be read: {e}"));
            (None, 0)
        }
    };
    let mut checks = Vec::new();
    if let Some(r) = &report {
        for c in r.checks.iter().filter(|c| c.status == Status::Fail) {
            findings.push(format!("{}: {}", c.check, c.detail));
        }
        if r.tagmanifest_sha256.as_deref() != Some(case.tagmanifest_sha256.as_str()) {
            findings.push(
                "the database's package digest differs from the stored package's tag manifest"
                    .into(),
            );
        }
        for f in archive.db.case_files(&case.archive_id).await? {
            let key = format!("data/submission/{}", f.path);
            if r.manifest_sha256.get(&key) != Some(&f.sha256) {
                findings.push(format!(
                    "the database's SHA-256 of {} differs from the package manifest",
                    f.path
                ));
            }
        }
        checks = r.checks.clone();
    }
    if proof.is_none() {
        findings.push("the case has no entry in the transparency log".into());
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
    record(&archive.db, &audit).await?;
    if audit.ok {
        archive
            .metrics
            .fixity_ok
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        archive
            .metrics
            .fixity_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(archive_id = %case.archive_id, findings = ?audit.findings, "fixity audit FAILED");
        let entry = format!("guidang-fixity-failed-v1\n{}\n{}\n", case.archive_id, at);
        archive.log_event("fixity_failed", entry).await?;
    }
    Ok(audit)
}

async fn record(db: &Db, a: &Audit) -> Result<(), DbError> {
    let detail = json!({"findings": a.findings, "checks": a.checks}).to_string();
    sqlx::query("INSERT INTO fixity_audits (audit_id, archive_id, at, ok, bytes, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&a.audit_id)
        .bind(&a.archive_id)
        .bind(&a.at)
        .bind(a.ok as i64)
        .bind(a.bytes as i64)
        .bind(detail)
        .execute(&db.pool)
        .await?;
    sqlx::query("UPDATE cases SET verified_at = $1 WHERE archive_id = $2")
        .bind(&a.at)
        .bind(&a.archive_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Recent audits, newest first; `failed_only` for the ones that found something.
pub async fn list(
    db: &Db,
    failed_only: bool,
    limit: i64,
) -> Result<Vec<serde_json::Value>, DbError> {
    let sql = if failed_only {
        "SELECT audit_id, archive_id, at, ok, bytes, detail FROM fixity_audits WHERE ok = 0 ORDER BY at DESC LIMIT $1"
    } else {
        "SELECT audit_id, archive_id, at, ok, bytes, detail FROM fixity_audits ORDER BY at DESC LIMIT $1"
    };
    let rows = sqlx::query(sql).bind(limit).fetch_all(&db.pool).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let detail: serde_json::Value =
                serde_json::from_str(&r.get::<String, _>("detail")).unwrap_or_default();
            json!({
                "audit_id": r.get::<String, _>("audit_id"),
                "archive_id": r.get::<String, _>("archive_id"),
                "at": r.get::<String, _>("at"),
                "ok": r.get::<i64, _>("ok") != 0,
                "bytes": r.get::<i64, _>("bytes"),
                "findings": detail["findings"],
            })
        })
        .collect())
}

/// The background audit: least recently verified first, each package at most once per
/// `min_interval`, at most `bytes_per_hour`.
pub async fn run_background(
    archive: std::sync::Arc<Archive>,
    bytes_per_hour: u64,
    min_interval: std::time::Duration,
) {
    if bytes_per_hour == 0 {
        return;
    }
    let hour = std::time::Duration::from_secs(3600);
    let mut window = std::time::Instant::now();
    let mut spent = 0u64;
    // Hourly, the database is also reconciled with the log (deleted rows, rewritten entries).
    let reconcile = |archive: std::sync::Arc<Archive>| async move {
        if let Err(e) = archive.reconcile().await {
            tracing::error!(error = %e, "reconciliation could not run");
        }
    };
    reconcile(archive.clone()).await;
    loop {
        if window.elapsed() >= hour {
            window = std::time::Instant::now();
            spent = 0;
            reconcile(archive.clone()).await;
        }
        if spent >= bytes_per_hour {
            tokio::time::sleep(hour.saturating_sub(window.elapsed())).await;
            continue;
        }
        let before = (chrono::Utc::now()
            - chrono::Duration::from_std(min_interval).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let next = match archive.db.next_to_verify(&before).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "fixity audit: cannot pick a case");
                None
            }
        };
        let Some(case) = next else {
            tokio::time::sleep(IDLE).await;
            continue;
        };
        match audit_case(&archive, &case).await {
            Ok(a) => spent += a.bytes.max(1),
            Err(e) => {
                tracing::error!(error = %e, archive_id = %case.archive_id, "fixity audit could not run");
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
        }
    }
}
