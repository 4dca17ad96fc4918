//! Case rows: what the archive records about each archived package.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Bind, Db, DbError, bind_all};

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub path: String,
    pub role: String,
    pub size: i64,
    pub sha256: String,
    pub sm3: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    pub mime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// PRONOM identifier, where the content determines one (derived, not stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puid: Option<&'static str>,
    #[serde(skip)]
    pub pkg_offset: i64,
    /// The package version that holds the file (its offset is inside that version's package).
    pub version: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub kind: String,
    pub at: String,
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where a case is in its life: archived, filed in a yearly batch, or disposed (a tombstone).
/// Stored as the lower-case word; SQL in this module compares with those words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Archived,
    Filed,
    Disposed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Archived => "archived",
            CaseStatus::Filed => "filed",
            CaseStatus::Disposed => "disposed",
        }
    }

    pub fn parse(s: &str) -> Option<CaseStatus> {
        Some(match s {
            "archived" => CaseStatus::Archived,
            "filed" => CaseStatus::Filed,
            "disposed" => CaseStatus::Disposed,
            _ => return None,
        })
    }
}

impl TryFrom<String> for CaseStatus {
    type Error = String;
    fn try_from(s: String) -> Result<CaseStatus, String> {
        CaseStatus::parse(&s).ok_or_else(|| format!("unknown case status {s:?}"))
    }
}

/// Everything stored about one case.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CaseRow {
    pub archive_id: String,
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub content_digest: String,
    pub version: i64,
    #[sqlx(try_from = "String")]
    pub status: CaseStatus,
    pub year: i64,
    pub task_name: String,
    pub task_type: String,
    pub catalog_code: Option<String>,
    pub project_name: String,
    pub region_code: String,
    pub lead_department: String,
    pub result: String,
    pub security_classification: String,
    pub retention_proposed: Option<String>,
    pub retention: Option<String>,
    pub archival_code: Option<String>,
    pub receive_time: String,
    pub transact_time: String,
    pub source: String,
    pub submitted_by: String,
    pub package_key: String,
    pub package_size: i64,
    pub tagmanifest_sha256: String,
    pub signature_json: String,
    pub key_id: String,
    pub metadata_json: String,
    pub warnings_json: String,
    pub archived_at: String,
    pub checks_json: String,
    pub retention_rule_version: Option<i64>,
    pub retention_basis: Option<String>,
    pub filing_batch: Option<String>,
    pub filed_at: Option<String>,
    pub filing_late: i64,
    pub filing_problem: Option<String>,
    pub disposed_at: Option<String>,
    pub disposal_list: Option<String>,
    /// Files in the package and their bytes, recorded at ingest.
    pub file_count: Option<i64>,
    pub file_bytes: Option<i64>,
    /// Pages of paper originals the metadata declares (`paper_pages`), if any.
    pub paper_pages: Option<i64>,
    /// Pages of digitised copies added to the case.
    pub digitised_pages: i64,
    /// The filing batch whose facts a version of the package signs.
    pub sealed_filing: Option<String>,
    /// The transfer batch the archive authority receipted this case in, and the receipt's time.
    pub transferred_in: Option<String>,
    pub transferred_at: Option<String>,
}

pub const CASE_COLUMNS: &str = "archive_id, social_code, task_code, project_id, content_digest, version, status, year, \
    task_name, task_type, catalog_code, project_name, region_code, lead_department, result, security_classification, \
    retention_proposed, retention, archival_code, receive_time, transact_time, source, submitted_by, package_key, \
    package_size, tagmanifest_sha256, signature_json, key_id, metadata_json, warnings_json, archived_at, checks_json, \
    retention_rule_version, retention_basis, filing_batch, filed_at, filing_late, filing_problem, disposed_at, disposal_list, \
    file_count, file_bytes, paper_pages, digitised_pages, sealed_filing, transferred_in, transferred_at";

/// A case row read with [`CASE_COLUMNS`].
pub fn case_from(r: &AnyRow) -> Result<CaseRow, sqlx::Error> {
    <CaseRow as sqlx::FromRow<AnyRow>>::from_row(r)
}

#[derive(Debug, Default, Clone)]
pub struct CaseFilter {
    pub year: Option<i64>,
    pub task_code: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    /// Submitters see their own organisation only.
    pub org: Option<String>,
    pub page: i64,
    pub per_page: i64,
}

impl Db {
    pub async fn case_by_key(
        &self,
        social_code: &str,
        task_code: &str,
        project_id: &str,
    ) -> Result<Option<CaseRow>, DbError> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE social_code = $1 AND task_code = $2 AND project_id = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(social_code)
            .bind(task_code)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_from).transpose().map_err(Into::into)
    }

    /// The archived case verified least recently (never verified first), if it was last verified
    /// before `before` (RFC 3339).
    pub async fn next_to_verify(&self, before: &str) -> Result<Option<CaseRow>, DbError> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE status IN ('archived', 'filed') AND (verified_at IS NULL OR verified_at < $1) \
             ORDER BY CASE WHEN verified_at IS NULL THEN 0 ELSE 1 END, verified_at, archived_at LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_from).transpose().map_err(Into::into)
    }

    pub async fn case(&self, archive_id: &str) -> Result<Option<CaseRow>, DbError> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE archive_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(archive_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_from).transpose().map_err(Into::into)
    }

    pub async fn case_files(&self, archive_id: &str) -> Result<Vec<FileRow>, DbError> {
        let rows = sqlx::query(
            "SELECT path, role, size, sha256, sm3, format, format_version, mime, note, pkg_offset, version FROM case_files \
             WHERE archive_id = $1 ORDER BY path",
        )
        .bind(archive_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| FileRow {
                path: r.get("path"),
                role: r.get("role"),
                size: r.get("size"),
                sha256: r.get("sha256"),
                sm3: r.get("sm3"),
                format: r.get("format"),
                format_version: r.get("format_version"),
                mime: r.get("mime"),
                note: r.get("note"),
                puid: None,
                pkg_offset: r.get("pkg_offset"),
                version: r.get("version"),
            })
            .map(|mut f: FileRow| {
                f.puid =
                    crate::codes::pronom(&f.format, f.format_version.as_deref(), f.note.as_deref());
                f
            })
            .collect())
    }

    pub async fn case_events(&self, archive_id: &str) -> Result<Vec<EventRow>, DbError> {
        let rows = sqlx::query("SELECT kind, at, agent, detail FROM case_events WHERE archive_id = $1 ORDER BY at, event_id")
            .bind(archive_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| EventRow {
                kind: r.get("kind"),
                at: r.get("at"),
                agent: r.get("agent"),
                detail: r.get("detail"),
            })
            .collect())
    }

    /// A page of cases, newest first, and the total count matching the filter.
    pub async fn list_cases(&self, f: &CaseFilter) -> Result<(Vec<CaseRow>, i64), DbError> {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        let mut add = |clause: &str, b: Bind, binds: &mut Vec<Bind>| {
            binds.push(b);
            clauses.push(clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(y) = f.year {
            add("year = ?", Bind::I(y), &mut binds);
        }
        if let Some(t) = &f.task_code {
            add("task_code = ?", Bind::S(t.clone()), &mut binds);
        }
        if let Some(s) = &f.status {
            add("status = ?", Bind::S(s.clone()), &mut binds);
        }
        if let Some(o) = &f.org {
            add("social_code = ?", Bind::S(o.clone()), &mut binds);
        }
        if let Some(q) = &f.q
            && identifier_like(q)
        {
            // An archival code, archive id or project id: exact, through their indexes (a
            // substring search would read every row).
            binds.push(Bind::S(q.clone()));
            let m = binds.len();
            clauses.push(format!(
                "(archival_code = ${m} OR archive_id = ${m} OR project_id = ${m})"
            ));
        } else if let Some(q) = &f.q {
            let like = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            binds.push(Bind::S(like));
            let n = binds.len();
            binds.push(Bind::S(q.clone()));
            let m = binds.len();
            clauses.push(format!(
                "(project_name LIKE ${n} ESCAPE '\\' OR task_name LIKE ${n} ESCAPE '\\' OR archival_code = ${m} OR project_id = ${m} OR archive_id = ${m})"
            ));
        }
        let wh = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) FROM cases {wh}");
        let total: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(count_sql)), &binds)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        let mut page_binds = binds.clone();
        page_binds.push(Bind::I(f.per_page));
        page_binds.push(Bind::I((f.page - 1) * f.per_page));
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases {wh} ORDER BY archived_at DESC, archive_id DESC LIMIT ${} OFFSET ${}",
            page_binds.len() - 1,
            page_binds.len()
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), &page_binds)
            .fetch_all(&self.pool)
            .await?;
        Ok((rows.iter().map(case_from).collect::<Result<_, _>>()?, total))
    }
}

/// Whether a search text is an identifier (archival code, archive id, project id) rather than
/// words: no spaces, no CJK, only the characters codes are made of.
fn identifier_like(q: &str) -> bool {
    q.len() >= 4
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '·' | '_' | '.' | '/'))
        && q.chars().any(|c| c.is_ascii_digit())
}

/// Records a case, its files and events, and clears its ingest intent, on a transaction the
/// caller owns (the recorder's group commit).
pub async fn insert_case_on(
    conn: &mut sqlx::AnyConnection,
    c: &CaseRow,
    files: &[FileRow],
    events: &[EventRow],
) -> Result<(), DbError> {
    let binds = case_binds(c);
    let placeholders: Vec<String> = (1..=binds.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO cases ({CASE_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), &binds)
        .execute(&mut *conn)
        .await?;
    insert_files_on(&mut *conn, &c.archive_id, 1, files).await?;
    super::versions::insert_on(
        &mut *conn,
        &super::versions::VersionRow {
            archive_id: c.archive_id.clone(),
            version: 1,
            kind: "submission".into(),
            package_key: c.package_key.clone(),
            package_size: c.package_size,
            tagmanifest_sha256: c.tagmanifest_sha256.clone(),
            previous_sha256: None,
            signature_json: c.signature_json.clone(),
            key_id: c.key_id.clone(),
            created_at: c.archived_at.clone(),
            created_by: c.submitted_by.clone(),
            detail_json: None,
        },
    )
    .await?;
    insert_events_on(&mut *conn, &c.archive_id, events).await?;
    sqlx::query("DELETE FROM ingest_intents WHERE archive_id = $1")
        .bind(&c.archive_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records events of a case.
pub async fn insert_events_on(
    conn: &mut sqlx::AnyConnection,
    archive_id: &str,
    events: &[EventRow],
) -> Result<(), DbError> {
    if !events.is_empty() {
        let mut binds = Vec::with_capacity(events.len() * 6);
        for e in events {
            binds.extend([
                Bind::S(uuid::Uuid::now_v7().to_string()),
                Bind::S(archive_id.to_string()),
                Bind::S(e.kind.clone()),
                Bind::S(e.at.clone()),
                Bind::S(e.agent.clone()),
                Bind::OptS(e.detail.clone()),
            ]);
        }
        let sql = format!(
            "INSERT INTO case_events (event_id, archive_id, kind, at, agent, detail) VALUES {}",
            value_rows(events.len(), 6)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records the files a package version holds.
pub async fn insert_files_on(
    conn: &mut sqlx::AnyConnection,
    archive_id: &str,
    version: i64,
    files: &[FileRow],
) -> Result<(), DbError> {
    // Multi-row inserts of 100 rows: sqlx binds SQLite parameters in time that grows faster than
    // their number.
    for chunk in files.chunks(100) {
        let mut binds = Vec::with_capacity(chunk.len() * 12);
        for f in chunk {
            binds.extend([
                Bind::S(archive_id.to_string()),
                Bind::S(f.path.clone()),
                Bind::S(f.role.clone()),
                Bind::I(f.size),
                Bind::S(f.sha256.clone()),
                Bind::S(f.sm3.clone()),
                Bind::S(f.format.clone()),
                Bind::OptS(f.format_version.clone()),
                Bind::S(f.mime.clone()),
                Bind::OptS(f.note.clone()),
                Bind::I(f.pkg_offset),
                Bind::I(version),
            ]);
        }
        let sql = format!(
            "INSERT INTO case_files (archive_id, path, role, size, sha256, sm3, format, format_version, mime, note, pkg_offset, version) VALUES {}",
            value_rows(chunk.len(), 12)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The binds of `INSERT INTO cases (CASE_COLUMNS)`, in that order.
pub fn case_binds(c: &CaseRow) -> Vec<Bind> {
    vec![
        Bind::S(c.archive_id.clone()),
        Bind::S(c.social_code.clone()),
        Bind::S(c.task_code.clone()),
        Bind::S(c.project_id.clone()),
        Bind::S(c.content_digest.clone()),
        Bind::I(c.version),
        Bind::S(c.status.as_str().into()),
        Bind::I(c.year),
        Bind::S(c.task_name.clone()),
        Bind::S(c.task_type.clone()),
        Bind::OptS(c.catalog_code.clone()),
        Bind::S(c.project_name.clone()),
        Bind::S(c.region_code.clone()),
        Bind::S(c.lead_department.clone()),
        Bind::S(c.result.clone()),
        Bind::S(c.security_classification.clone()),
        Bind::OptS(c.retention_proposed.clone()),
        Bind::OptS(c.retention.clone()),
        Bind::OptS(c.archival_code.clone()),
        Bind::S(c.receive_time.clone()),
        Bind::S(c.transact_time.clone()),
        Bind::S(c.source.clone()),
        Bind::S(c.submitted_by.clone()),
        Bind::S(c.package_key.clone()),
        Bind::I(c.package_size),
        Bind::S(c.tagmanifest_sha256.clone()),
        Bind::S(c.signature_json.clone()),
        Bind::S(c.key_id.clone()),
        Bind::S(c.metadata_json.clone()),
        Bind::S(c.warnings_json.clone()),
        Bind::S(c.archived_at.clone()),
        Bind::S(c.checks_json.clone()),
        Bind::OptI(c.retention_rule_version),
        Bind::OptS(c.retention_basis.clone()),
        Bind::OptS(c.filing_batch.clone()),
        Bind::OptS(c.filed_at.clone()),
        Bind::I(c.filing_late),
        Bind::OptS(c.filing_problem.clone()),
        Bind::OptS(c.disposed_at.clone()),
        Bind::OptS(c.disposal_list.clone()),
        Bind::OptI(c.file_count),
        Bind::OptI(c.file_bytes),
        Bind::OptI(c.paper_pages),
        Bind::I(c.digitised_pages),
        Bind::OptS(c.sealed_filing.clone()),
        Bind::OptS(c.transferred_in.clone()),
        Bind::OptS(c.transferred_at.clone()),
    ]
}

/// `($1, $2, …), ($n+1, …), …` for `rows` rows of `cols` placeholders.
pub fn value_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
