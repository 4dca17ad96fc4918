//! The yearly filing's rows: batches, the queue of archived cases a batch files, notices given.
//! (A chunk's codes, counters and totals are written by the filing service in one transaction
//! whose statements depend on each other's results; see `filing::record_chunk`.)

use serde::Serialize;

use sqlx::Row;

use super::{Db, DbError};

/// See [`Db::batch_check_outcomes`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CheckOutcomes {
    pub complete: i64,
    pub not_configured: i64,
    pub manual: i64,
    pub not_checked: i64,
}

/// A filing batch: its counts, and the documents it left (register, form) once complete.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Batch {
    pub batch_id: String,
    pub year: i64,
    pub seq: i64,
    /// `regular` (the first batch of the year) or `supplementary`.
    pub kind: String,
    /// `running` or `complete`.
    pub state: String,
    /// `manual` or `scheduled`.
    pub origin: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub cases: i64,
    pub files: i64,
    pub bytes: i64,
    pub online: i64,
    pub offline: i64,
    pub late: i64,
    /// Cases the filing check refused (left unfiled, with the reason on the case).
    pub refused: i64,
    #[serde(skip)]
    pub documents_json: Option<String>,
    /// The documents, as recorded in `documents_json`.
    #[sqlx(skip)]
    pub documents: Option<serde_json::Value>,
}

impl Batch {
    fn with_documents(mut self) -> Batch {
        self.documents = self
            .documents_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        self
    }
}

const BATCH_COLUMNS: &str = "batch_id, year, seq, kind, state, origin, started_by, started_at, finished_at, \
    cases, files, bytes, online, offline, late, refused, documents_json";

/// What the filing needs of a case: a narrow row, because a year can hold a million of them.
#[derive(Debug, sqlx::FromRow)]
pub struct Queued {
    pub archive_id: String,
    pub social_code: String,
    pub task_type: String,
    pub retention: Option<String>,
    pub source: String,
    pub package_key: String,
    pub package_size: i64,
    pub tagmanifest_sha256: String,
    pub transact_time: String,
    pub file_count: Option<i64>,
    pub file_bytes: Option<i64>,
    /// The newest package version (earlier ones are checked too).
    pub version: i64,
    /// The archiving-stage check report, only when it holds a failed item.
    pub failed_checks: Option<String>,
}

impl Db {
    /// Of a batch's filed cases: how many have every archiving check item `pass` or
    /// `not_applicable`, and how many carry an item `not_configured`, `manual` or `not_checked`
    /// (the report is JSON written by serde_json, without spaces).
    pub async fn batch_check_outcomes(&self, batch_id: &str) -> Result<CheckOutcomes, DbError> {
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN checks_json NOT LIKE '%\"result\":\"not_configured\"%' \
                 AND checks_json NOT LIKE '%\"result\":\"manual\"%' \
                 AND checks_json NOT LIKE '%\"result\":\"not_checked\"%' THEN 1 ELSE 0 END), 0) AS complete, \
             COALESCE(SUM(CASE WHEN checks_json LIKE '%\"result\":\"not_configured\"%' THEN 1 ELSE 0 END), 0) AS not_configured, \
             COALESCE(SUM(CASE WHEN checks_json LIKE '%\"result\":\"manual\"%' THEN 1 ELSE 0 END), 0) AS manual, \
             COALESCE(SUM(CASE WHEN checks_json LIKE '%\"result\":\"not_checked\"%' THEN 1 ELSE 0 END), 0) AS not_checked \
             FROM cases WHERE filing_batch = $1",
        )
        .bind(batch_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(CheckOutcomes {
            complete: row.try_get::<i64, _>("complete")?,
            not_configured: row.try_get::<i64, _>("not_configured")?,
            manual: row.try_get::<i64, _>("manual")?,
            not_checked: row.try_get::<i64, _>("not_checked")?,
        })
    }

    pub async fn batches(&self, year: i64) -> Result<Vec<Batch>, DbError> {
        let rows: Vec<Batch> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM filing_batches WHERE year = $1 ORDER BY seq"
        )))
        .bind(year)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Batch::with_documents).collect())
    }

    pub async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, DbError> {
        let row: Option<Batch> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM filing_batches WHERE batch_id = $1"
        )))
        .bind(batch_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Batch::with_documents))
    }

    /// The next archived cases of `year` for batch `batch_id` (not refused by it already), after
    /// `cursor` in completion order.
    pub async fn filing_queue(
        &self,
        year: i64,
        batch_id: &str,
        cursor: &(String, String),
        limit: i64,
    ) -> Result<Vec<Queued>, DbError> {
        // The report is JSON written by serde_json (no spaces), so a failed item reads `"fail"`.
        Ok(sqlx::query_as(
            "SELECT archive_id, social_code, task_type, retention, source, package_key, package_size, \
             tagmanifest_sha256, transact_time, file_count, file_bytes, version, \
             CASE WHEN checks_json LIKE '%\"result\":\"fail\"%' THEN checks_json END AS failed_checks \
             FROM cases WHERE year = $1 AND status = 'archived' \
             AND (filing_problem_batch IS NULL OR filing_problem_batch <> $2) \
             AND (transact_time, archive_id) > ($3, $4) \
             ORDER BY transact_time, archive_id LIMIT $5",
        )
        .bind(year)
        .bind(batch_id)
        .bind(&cursor.0)
        .bind(&cursor.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether `year` has an archived case not yet filed.
    pub async fn has_unfiled(&self, year: i64) -> Result<bool, DbError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM cases WHERE year = $1 AND status = 'archived' LIMIT 1) t",
        )
        .bind(year)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Starts batch number `MAX + 1` of `year` (the first is `regular`, later ones
    /// `supplementary`); returns its id.
    pub async fn start_batch(
        &self,
        year: i64,
        origin: &str,
        started_by: &str,
        started_at: &str,
    ) -> Result<String, DbError> {
        let mut tx = self.begin_write().await?;
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM filing_batches WHERE year = $1",
        )
        .bind(year)
        .fetch_one(&mut *tx)
        .await?;
        let batch_id = format!(
            "{year}-{seq:02}-{}",
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        let kind = if seq == 1 { "regular" } else { "supplementary" };
        sqlx::query("INSERT INTO filing_batches (batch_id, year, seq, kind, state, origin, started_by, started_at) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)")
            .bind(&batch_id)
            .bind(year)
            .bind(seq)
            .bind(kind)
            .bind(origin)
            .bind(started_by)
            .bind(started_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(batch_id)
    }

    /// Files and bytes of a case counted from its file rows (for a row recorded before the
    /// counts were kept on the case).
    pub async fn counted_files(&self, archive_id: &str) -> Result<(i64, i64), DbError> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM case_files WHERE archive_id = $1",
        )
        .bind(archive_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Cases of `year` the scheduler would file: running batches and archived, unrefused cases.
    pub async fn waiting_unrefused(&self, year: i64) -> Result<i64, DbError> {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM filing_batches WHERE year = $1 AND state = 'running'",
        )
        .bind(year)
        .fetch_one(&self.pool)
        .await?;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cases WHERE year = $1 AND status = 'archived' AND filing_problem IS NULL",
        )
        .bind(year)
        .fetch_one(&self.pool)
        .await?;
        Ok(running + waiting)
    }

    /// Records a notice as given; `false` if it had been given already (by any server).
    pub async fn mark_notice(&self, year: i64, key: &str, at: &str) -> Result<bool, DbError> {
        let n = sqlx::query(
            "INSERT INTO filing_notices (year, notice, at) VALUES ($1, $2, $3) ON CONFLICT (year, notice) DO NOTHING",
        )
        .bind(year)
        .bind(key)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
