//! Holds: a case under a hold (litigation, audit, an open request) is never disposed of.

use serde::Serialize;

use super::{Db, DbError};

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Hold {
    pub hold_id: String,
    pub archive_id: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: String,
    pub released_by: Option<String>,
    pub released_at: Option<String>,
    pub release_reason: Option<String>,
}

pub const HOLD_COLUMNS: &str =
    "hold_id, archive_id, reason, placed_by, placed_at, released_by, released_at, release_reason";

impl Db {
    /// Every hold of a case, released ones included, oldest first.
    pub async fn holds_of(&self, archive_id: &str) -> Result<Vec<Hold>, DbError> {
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE archive_id = $1 ORDER BY placed_at, hold_id"
        );
        Ok(sqlx::query_as::<_, Hold>(sqlx::AssertSqlSafe(sql))
            .bind(archive_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
