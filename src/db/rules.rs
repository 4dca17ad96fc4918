//! Retention rule sets (versioned, never changed once written) and the retention recorded on
//! cases when the rules are re-applied.

use super::{Db, DbError};

/// A stored rule set; the rules themselves are JSON the retention service reads.
#[derive(Debug, sqlx::FromRow)]
pub struct RuleSetRow {
    pub version: i64,
    pub rules_json: String,
    pub created_at: String,
    pub created_by: String,
}

/// What re-evaluation needs of a case to assign its retention again.
#[derive(Debug, sqlx::FromRow)]
pub struct RetentionInputs {
    pub archive_id: String,
    pub task_type: String,
    pub catalog_code: Option<String>,
    pub task_code: String,
    pub retention_proposed: Option<String>,
    pub retention: Option<String>,
}

/// A retention newly assigned to a case, and the event that says so.
pub struct RetentionChange<'a> {
    pub archive_id: &'a str,
    pub retention: &'a str,
    pub rule_version: i64,
    pub basis: &'a str,
    pub event_detail: String,
}

const COLUMNS: &str = "version, rules_json, created_at, created_by";

impl Db {
    /// The newest rule set, if any was ever stored.
    pub async fn latest_rule_set(&self) -> Result<Option<RuleSetRow>, DbError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM retention_rulesets ORDER BY version DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn rule_set(&self, version: i64) -> Result<Option<RuleSetRow>, DbError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM retention_rulesets WHERE version = $1"
        )))
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores `rules_json` as the next version (one writer at a time across servers).
    pub async fn insert_rule_set(
        &self,
        rules_json: &str,
        by: &str,
        at: &str,
    ) -> Result<i64, DbError> {
        let mut tx = self.begin_write().await?;
        super::locks::AdvisoryLock::Rules
            .hold_on(&mut tx, self.postgres)
            .await?;
        let v: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM retention_rulesets")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO retention_rulesets (version, rules_json, created_at, created_by) VALUES ($1, $2, $3, $4)")
            .bind(v + 1)
            .bind(rules_json)
            .bind(at)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(v + 1)
    }

    /// A page of cases not disposed of, after `after` in archive-id order.
    pub async fn retention_inputs(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<RetentionInputs>, DbError> {
        Ok(sqlx::query_as(
            "SELECT archive_id, task_type, catalog_code, task_code, retention_proposed, retention FROM cases \
             WHERE archive_id > $1 AND status <> 'disposed' ORDER BY archive_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records new retentions, each with its case event, in one transaction.
    pub async fn record_retentions(
        &self,
        changes: &[RetentionChange<'_>],
        by: &str,
        at: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        for c in changes {
            sqlx::query("UPDATE cases SET retention = $1, retention_rule_version = $2, retention_basis = $3 WHERE archive_id = $4")
                .bind(c.retention)
                .bind(c.rule_version)
                .bind(c.basis)
                .bind(c.archive_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO case_events (event_id, archive_id, kind, at, agent, detail) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(c.archive_id)
                .bind("retention_reevaluated")
                .bind(at)
                .bind(by)
                .bind(&c.event_detail)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
