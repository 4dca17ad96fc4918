//! Package versions: every version of every case's package, newest described by `cases` too.

use serde::Serialize;
use sqlx::Row;

use super::cases::{FileRow, insert_files_on};
use super::{Db, DbError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct VersionRow {
    pub archive_id: String,
    pub version: i64,
    /// `submission` (version 1), `digitised` (scans added), `filing` (filing facts sealed).
    pub kind: String,
    #[serde(skip)]
    pub package_key: String,
    pub package_size: i64,
    pub tagmanifest_sha256: String,
    /// The previous version's tag-manifest SHA-256, which this version's signed part names.
    pub previous_sha256: Option<String>,
    #[serde(skip)]
    pub signature_json: String,
    pub key_id: String,
    pub created_at: String,
    #[serde(skip)]
    pub created_by: String,
    #[serde(skip)]
    pub detail_json: Option<String>,
}

const COLUMNS: &str = "archive_id, version, kind, package_key, package_size, tagmanifest_sha256, \
    previous_sha256, signature_json, key_id, created_at, created_by, detail_json";

pub async fn insert_on(conn: &mut sqlx::AnyConnection, v: &VersionRow) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO package_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&v.archive_id)
        .bind(v.version)
        .bind(&v.kind)
        .bind(&v.package_key)
        .bind(v.package_size)
        .bind(&v.tagmanifest_sha256)
        .bind(&v.previous_sha256)
        .bind(&v.signature_json)
        .bind(&v.key_id)
        .bind(&v.created_at)
        .bind(&v.created_by)
        .bind(&v.detail_json)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a new version changes about its case.
pub struct CaseUpdate<'a> {
    pub digitised_pages: i64,
    pub sealed_filing: Option<&'a str>,
}

/// Records version `v` of a case on the caller's transaction: the version row, its files, and the
/// case row now describing it. Fails with [`DbError::Conflict`] if another version was recorded
/// since the caller read version `v.version - 1` (the case row moved on).
pub async fn record_on(
    conn: &mut sqlx::AnyConnection,
    v: &VersionRow,
    files: &[FileRow],
    update: &CaseUpdate<'_>,
    intent: &str,
) -> Result<(), DbError> {
    let moved = sqlx::query(
        "UPDATE cases SET version = $1, package_key = $2, package_size = $3, tagmanifest_sha256 = $4, \
         signature_json = $5, key_id = $6, digitised_pages = digitised_pages + $7, \
         sealed_filing = COALESCE($8, sealed_filing), \
         file_count = COALESCE(file_count, 0) + $9, file_bytes = COALESCE(file_bytes, 0) + $10 \
         WHERE archive_id = $11 AND version = $12 AND status <> 'disposed'",
    )
    .bind(v.version)
    .bind(&v.package_key)
    .bind(v.package_size)
    .bind(&v.tagmanifest_sha256)
    .bind(&v.signature_json)
    .bind(&v.key_id)
    .bind(update.digitised_pages)
    .bind(update.sealed_filing)
    .bind(files.len() as i64)
    .bind(files.iter().map(|f| f.size).sum::<i64>())
    .bind(&v.archive_id)
    .bind(v.version - 1)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        return Err(DbError::Conflict(format!(
            "case {} changed while version {} was being made (another version was recorded, or \
             the case was disposed)",
            v.archive_id, v.version
        )));
    }
    insert_on(&mut *conn, v).await?;
    insert_files_on(&mut *conn, &v.archive_id, v.version, files).await?;
    sqlx::query("DELETE FROM ingest_intents WHERE archive_id = $1")
        .bind(intent)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Db {
    pub async fn versions(&self, archive_id: &str) -> Result<Vec<VersionRow>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM package_versions WHERE archive_id = $1 ORDER BY version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(archive_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| <VersionRow as sqlx::FromRow<_>>::from_row(r).map_err(Into::into))
            .collect()
    }

    /// Every version of every case of a transfer batch, by case and version: one query for a
    /// batch of thousands.
    pub async fn versions_of_batch(&self, transfer_id: &str) -> Result<Vec<VersionRow>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM package_versions WHERE archive_id IN \
             (SELECT archive_id FROM transfer_cases WHERE transfer_id = $1) ORDER BY archive_id, version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(transfer_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| <VersionRow as sqlx::FromRow<_>>::from_row(r).map_err(Into::into))
            .collect()
    }

    /// Filed cases whose filing facts no package version signs yet, oldest filing first.
    pub async fn unsealed_filed(&self, limit: i64) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT archive_id FROM cases WHERE status = 'filed' AND filing_batch IS NOT NULL \
             AND (sealed_filing IS NULL OR sealed_filing <> filing_batch) \
             ORDER BY filed_at, archive_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every version's object key for a set of cases, for disposal and audits.
    pub async fn version_keys(&self, archive_id: &str) -> Result<Vec<(i64, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT version, package_key FROM package_versions WHERE archive_id = $1 ORDER BY version",
        )
        .bind(archive_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
