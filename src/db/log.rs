//! The transparency log's tables: entries, the stored hashes of its Merkle tree (hex, by level
//! and index) and signed checkpoints. What the hashes mean is the evidence module's.

use std::collections::HashMap;

use super::{Bind, Db, DbError, bind_all, value_rows};

/// Inserts an entry after the last one on the caller's transaction (which holds the log's
/// advisory lock); returns its index.
pub async fn insert_entry_on(
    conn: &mut sqlx::AnyConnection,
    kind: &str,
    archive_id: Option<&str>,
    entry: &str,
) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO log_entries (idx, kind, archive_id, entry, created_at) \
         SELECT COALESCE(MAX(idx) + 1, 0), $1, $2, $3, $4 FROM log_entries RETURNING idx",
    )
    .bind(kind)
    .bind(archive_id)
    .bind(entry)
    .bind(super::now_rfc3339())
    .fetch_one(conn)
    .await?)
}

/// Inserts stored hashes `(level, index, hex)` in one statement.
pub async fn insert_hashes_on(
    conn: &mut sqlx::AnyConnection,
    rows: &[(i64, i64, String)],
) -> Result<(), DbError> {
    let binds: Vec<Bind> = rows
        .iter()
        .flat_map(|(l, j, hash)| [Bind::I(*l), Bind::I(*j), Bind::S(hash.clone())])
        .collect();
    let sql = format!(
        "INSERT INTO log_hashes (level, idx, hash) VALUES {}",
        value_rows(rows.len(), 3)
    );
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
        .execute(conn)
        .await?;
    Ok(())
}

/// The stored hashes (hex) at the (level, index) `pairs` that exist, in one query; on a
/// transaction or the pool.
pub async fn stored_hashes<'e, E>(
    exec: E,
    pairs: &[(i64, i64)],
) -> Result<HashMap<(i64, i64), String>, DbError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut found = HashMap::new();
    if pairs.is_empty() {
        return Ok(found);
    }
    let binds: Vec<Bind> = pairs
        .iter()
        .flat_map(|(l, i)| [Bind::I(*l), Bind::I(*i)])
        .collect();
    let conds: Vec<String> = (0..pairs.len())
        .map(|k| format!("(level = ${} AND idx = ${})", 2 * k + 1, 2 * k + 2))
        .collect();
    let sql = format!(
        "SELECT level, idx, hash FROM log_hashes WHERE {}",
        conds.join(" OR ")
    );
    for r in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
        .fetch_all(exec)
        .await?
    {
        use sqlx::Row;
        found.insert((r.get(0), r.get(1)), r.get::<String, _>(2));
    }
    Ok(found)
}

/// One entry as reconciliation reads it, with its stored leaf hash and the digest of the case
/// it names.
#[derive(Debug, sqlx::FromRow)]
pub struct EntryCheck {
    pub idx: i64,
    pub kind: String,
    pub archive_id: Option<String>,
    pub entry: String,
    pub leaf_hash: Option<String>,
    /// The case the entry names, if it still has a row.
    pub case_id: Option<String>,
    /// The digest of the case's package version this entry names, if one matches.
    pub case_digest: Option<String>,
}

impl Db {
    /// Entries in the log.
    pub async fn log_size(&self) -> Result<i64, DbError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records a signed checkpoint unless one of that size exists.
    pub async fn insert_checkpoint(
        &self,
        size: i64,
        root_b64: &str,
        note: &str,
    ) -> Result<(), DbError> {
        let sql = if self.postgres {
            "INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING"
        } else {
            "INSERT OR IGNORE INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)"
        };
        sqlx::query(sql)
            .bind(size)
            .bind(root_b64)
            .bind(note)
            .bind(super::now_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest checkpoint: (size, signed note).
    pub async fn latest_checkpoint(&self) -> Result<Option<(i64, String)>, DbError> {
        Ok(
            sqlx::query_as("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The index of an exact entry about a case.
    pub async fn entry_index(&self, archive_id: &str, entry: &str) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT idx FROM log_entries WHERE archive_id = $1 AND entry = $2 ORDER BY idx LIMIT 1",
        )
        .bind(archive_id)
        .bind(entry)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The package entries (`aip`) of the cases of a transfer batch: (archive id, entry, index).
    pub async fn aip_entries_of_batch(
        &self,
        transfer_id: &str,
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT archive_id, entry, idx FROM log_entries WHERE kind = 'aip' AND archive_id IN \
             (SELECT archive_id FROM transfer_cases WHERE transfer_id = $1)",
        )
        .bind(transfer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The index of the newest package entry of a case.
    pub async fn aip_entry_index(&self, archive_id: &str) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT idx FROM log_entries WHERE archive_id = $1 AND kind = 'aip' ORDER BY idx DESC LIMIT 1",
        )
        .bind(archive_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Entries after `after`, for reconciliation.
    pub async fn entries_to_check(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EntryCheck>, DbError> {
        Ok(sqlx::query_as(
            "SELECT e.idx, e.kind, e.archive_id, e.entry, h.hash AS leaf_hash, c.archive_id AS case_id, \
             v.tagmanifest_sha256 AS case_digest \
             FROM log_entries e \
             LEFT JOIN log_hashes h ON h.level = 0 AND h.idx = e.idx \
             LEFT JOIN cases c ON c.archive_id = e.archive_id \
             LEFT JOIN package_versions v ON e.kind = 'aip' AND v.archive_id = e.archive_id \
                 AND v.tagmanifest_sha256 = SUBSTR(e.entry, LENGTH(e.entry) - 64, 64) \
             WHERE e.idx > $1 ORDER BY e.idx LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest entry of a kind (the last audit head entered, by whichever server).
    pub async fn last_entry_of_kind(&self, kind: &str) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT entry FROM log_entries WHERE kind = $1 ORDER BY idx DESC LIMIT 1",
        )
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every case's id, status and newest package digest (reconciliation: each must have its
    /// entry).
    pub async fn case_statuses(&self) -> Result<Vec<(String, String, String)>, DbError> {
        Ok(
            sqlx::query_as("SELECT archive_id, status, tagmanifest_sha256 FROM cases")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
