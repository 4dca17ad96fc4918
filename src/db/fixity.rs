//! Fixity audits: one row per re-verification of a stored package, and the case's last
//! verification time that orders the background audit.

use super::{Db, DbError};

#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub audit_id: String,
    pub archive_id: String,
    pub at: String,
    pub ok: i64,
    pub bytes: i64,
    /// JSON: the findings and the checks.
    pub detail: String,
}

impl Db {
    /// Records an audit and marks the case verified at its time.
    pub async fn record_audit(&self, a: &AuditRow) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO fixity_audits (audit_id, archive_id, at, ok, bytes, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&a.audit_id)
            .bind(&a.archive_id)
            .bind(&a.at)
            .bind(a.ok)
            .bind(a.bytes)
            .bind(&a.detail)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE cases SET verified_at = $1 WHERE archive_id = $2")
            .bind(&a.at)
            .bind(&a.archive_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Recent audits, newest first; `failed_only` for those that found something.
    pub async fn audits(&self, failed_only: bool, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let sql = if failed_only {
            "SELECT audit_id, archive_id, at, ok, bytes, detail FROM fixity_audits WHERE ok = 0 ORDER BY at DESC LIMIT $1"
        } else {
            "SELECT audit_id, archive_id, at, ok, bytes, detail FROM fixity_audits ORDER BY at DESC LIMIT $1"
        };
        Ok(sqlx::query_as(sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
