//! Disposal lists and their items: the rows behind `GET /api/v1/disposal/lists[/{id}]`.

use serde::Serialize;

use super::{Db, DbError};

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ListRow {
    pub list_id: String,
    pub state: String,
    pub opinion: Option<String>,
    pub proposed_by: Option<String>,
    pub proposed_by_name: Option<String>,
    pub proposed_at: Option<String>,
    pub decided_by: Option<String>,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<String>,
    pub decision_note: Option<String>,
    pub executed_by: Option<String>,
    pub executed_at: Option<String>,
    #[serde(skip)]
    pub documents_json: Option<String>,
}

/// A case on a list, with what its (possibly destroyed) case row still says.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ItemRow {
    pub archive_id: String,
    pub appraisal: String,
    pub outcome: Option<String>,
    pub archival_code: Option<String>,
    pub project_name: Option<String>,
    pub year: Option<i64>,
    pub retention: Option<String>,
}

/// One line of the list of lists.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ListLine {
    pub list_id: String,
    pub state: String,
    pub proposed_by_name: String,
    pub proposed_at: String,
    pub decided_at: Option<String>,
    pub executed_at: Option<String>,
    pub cases: i64,
}

impl Db {
    pub async fn disposal_list(&self, list_id: &str) -> Result<Option<ListRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT list_id, state, opinion, proposed_by, proposed_by_name, proposed_at, decided_by, \
             decided_by_name, decided_at, decision_note, executed_by, executed_at, documents_json \
             FROM disposal_lists WHERE list_id = $1",
        )
        .bind(list_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn disposal_items(&self, list_id: &str) -> Result<Vec<ItemRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT i.archive_id, i.appraisal, i.outcome, c.archival_code, c.project_name, c.year, \
             c.retention FROM disposal_items i LEFT JOIN cases c ON c.archive_id = i.archive_id \
             WHERE i.list_id = $1 ORDER BY i.archive_id",
        )
        .bind(list_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest thousand lists.
    pub async fn disposal_lists(&self) -> Result<Vec<ListLine>, DbError> {
        Ok(sqlx::query_as(
            "SELECT l.list_id, l.state, l.proposed_by_name, l.proposed_at, l.decided_at, \
             l.executed_at, (SELECT COUNT(*) FROM disposal_items i WHERE i.list_id = l.list_id) AS cases \
             FROM disposal_lists l ORDER BY l.proposed_at DESC LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
