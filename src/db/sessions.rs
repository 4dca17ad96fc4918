//! Console sessions: stored by the SHA-256 of the cookie's value, with the CSRF token of the
//! session and its times. Written to run unchanged on SQLite and PostgreSQL.

use sqlx::Row;

use super::{Db, DbError};

pub struct SessionRow {
    pub token_id: String,
    pub csrf: String,
    pub created_ms: i64,
    pub seen_ms: i64,
}

impl Db {
    pub async fn insert_session(
        &self,
        session_hash: &str,
        token_id: &str,
        csrf: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO console_sessions (session_hash, token_id, csrf, created_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(session_hash)
        .bind(token_id)
        .bind(csrf)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, session_hash: &str) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query(
            "SELECT token_id, csrf, created_ms, seen_ms FROM console_sessions WHERE session_hash = $1",
        )
        .bind(session_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SessionRow {
            token_id: r.get(0),
            csrf: r.get(1),
            created_ms: r.get(2),
            seen_ms: r.get(3),
        }))
    }

    /// Notes activity, at most once a minute (a write per page view would cost an fsync each).
    pub async fn touch_session(&self, session_hash: &str, now_ms: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE console_sessions SET seen_ms = $1 WHERE session_hash = $2 AND seen_ms < $3",
        )
        .bind(now_ms)
        .bind(session_hash)
        .bind(now_ms - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_session(&self, session_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM console_sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sessions idle since `idle_before` or opened before `created_before` are gone.
    pub async fn expire_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, DbError> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE seen_ms < $1 OR created_ms < $2")
                .bind(idle_before)
                .bind(created_before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

/// What the console's overview counts.
pub struct Overview {
    pub cases: i64,
    /// (YYYY-MM, cases archived that month), oldest first, the last twelve months with any.
    pub per_month: Vec<(String, i64)>,
    /// (problem code, submissions refused with it), most frequent first.
    pub rejections: Vec<(String, i64)>,
    pub fixity_failed: i64,
    pub holds: i64,
}

impl Db {
    pub async fn overview(&self) -> Result<Overview, DbError> {
        let cases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases")
            .fetch_one(&self.pool)
            .await?;
        // The last twelve months only, through the archived_at index: the chart must not read
        // every case of an archive that holds millions.
        let since = (chrono::Utc::now() - chrono::Duration::days(366))
            .format("%Y-%m")
            .to_string();
        let rows = sqlx::query(
            "SELECT SUBSTR(archived_at, 1, 7) AS m, COUNT(*) FROM cases WHERE archived_at >= $1 \
             GROUP BY m ORDER BY m DESC LIMIT 12",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut per_month: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        per_month.reverse();
        // `codes` is a comma-separated list per refused submission.
        let rows = sqlx::query("SELECT codes FROM rejections ORDER BY at DESC LIMIT 10000")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for r in &rows {
            let codes: String = r.get(0);
            for c in codes.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                *counts.entry(c.to_string()).or_default() += 1;
            }
        }
        let mut rejections: Vec<(String, i64)> = counts.into_iter().collect();
        rejections.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let fixity_failed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fixity_audits a WHERE a.ok = 0 \
             AND a.at = (SELECT MAX(b.at) FROM fixity_audits b WHERE b.archive_id = a.archive_id)",
        )
        .fetch_one(&self.pool)
        .await?;
        let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE released_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(Overview {
            cases,
            per_month,
            rejections,
            fixity_failed,
            holds,
        })
    }
}

/// A submission refused at ingest, as the console lists it.
#[derive(Debug, serde::Serialize)]
pub struct RejectionRow {
    pub at: String,
    pub year: i64,
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub codes: Vec<String>,
}

impl Db {
    /// Refused submissions, newest first, with the total.
    pub async fn rejections(
        &self,
        code: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RejectionRow>, i64), DbError> {
        // `codes` is a comma-separated list: a code matches as a whole item.
        let filter = if code.is_some() {
            "WHERE (',' || codes || ',') LIKE $1"
        } else {
            ""
        };
        let pattern = code.map(|c| format!("%,{c},%")).unwrap_or_default();
        let count_sql = format!("SELECT COUNT(*) FROM rejections {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        if code.is_some() {
            count = count.bind(pattern.clone());
        }
        let total = count.fetch_one(&self.pool).await?;
        let (l, o) = if code.is_some() {
            ("$2", "$3")
        } else {
            ("$1", "$2")
        };
        let sql = format!(
            "SELECT at, year, social_code, task_code, project_id, codes FROM rejections {filter} \
             ORDER BY at DESC LIMIT {l} OFFSET {o}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if code.is_some() {
            q = q.bind(pattern);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok((
            rows.iter()
                .map(|r| RejectionRow {
                    at: r.get(0),
                    year: r.get(1),
                    social_code: r.get(2),
                    task_code: r.get(3),
                    project_id: r.get(4),
                    codes: r
                        .get::<String, _>(5)
                        .split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .collect(),
                })
                .collect(),
            total,
        ))
    }
}
