//! The audit trail's rows. The chain itself (what each hash covers) is the evidence module's;
//! here only how rows are stored and read.

use serde::Serialize;

use super::{Bind, Db, DbError, bind_all};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TrailRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    #[serde(skip)]
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str = "seq, at, actor, role, action, target, outcome, prev_hash, hash";

/// Which rows to list.
#[derive(Debug, Default)]
pub struct TrailFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: i64,
}

/// The head of the trail as the transaction `conn` sees it: (seq, hash).
pub async fn head_on(conn: &mut sqlx::AnyConnection) -> Result<Option<(i64, String)>, DbError> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1")
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn insert_on(conn: &mut sqlx::AnyConnection, r: &TrailRow) -> Result<(), DbError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_trail ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(r.seq)
    .bind(&r.at)
    .bind(&r.actor)
    .bind(&r.role)
    .bind(&r.action)
    .bind(&r.target)
    .bind(&r.outcome)
    .bind(&r.prev_hash)
    .bind(&r.hash)
    .execute(conn)
    .await?;
    Ok(())
}

impl Db {
    pub async fn trail_head(&self) -> Result<Option<(i64, String)>, DbError> {
        Ok(
            sqlx::query_as("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Rows after `after` in chain order.
    pub async fn trail_page(&self, after: i64, limit: i64) -> Result<Vec<TrailRow>, DbError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_trail WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rows matching `f`, newest first.
    pub async fn trail_rows(&self, f: &TrailFilter) -> Result<Vec<TrailRow>, DbError> {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        for (col, op, v) in [
            ("actor", "=", &f.actor),
            ("action", "=", &f.action),
            ("target", "=", &f.target),
            ("at", ">=", &f.since),
            ("at", "<", &f.until),
        ] {
            if let Some(v) = v {
                binds.push(Bind::S(v.clone()));
                conds.push(format!("{col} {op} ${}", binds.len()));
            }
        }
        binds.push(Bind::I(f.limit));
        let wh = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_trail {wh} ORDER BY seq DESC LIMIT ${}",
            binds.len()
        );
        Ok(bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(<TrailRow as sqlx::FromRow<sqlx::any::AnyRow>>::from_row)
            .collect::<Result<_, _>>()?)
    }
}
