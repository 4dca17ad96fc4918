//! Where year Y stands: filed, pending, refused, late, rejected at submission, and — against what
//! the case systems declared they completed — missing and unexpected.
//!
//! SQL here, not in `db/`: these read-only aggregate queries *are* the report's definitions (what
//! counts as pending, refused, rejected-and-never-archived, missing), written once as SQL
//! conditions shared by a count and its list; splitting a definition from the report that states
//! it would put one rule in two files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;

use super::Filing;
use crate::db::{Bind, DbError, bind_all, value_rows};

/// Counts only; what the scheduler looks at every day.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    /// Every case of the year that was archived (whatever happened since).
    pub archived: i64,
    pub filed: i64,
    /// Archived, not yet filed.
    pub pending: i64,
    /// Pending cases the last filing check refused.
    pub refused: i64,
    /// Filed late, plus pending once the deadline has passed.
    pub late: i64,
    pub disposed: i64,
    /// Filed cases the archive authority has receipted (kept here five more years).
    pub transferred: i64,
    /// Submissions of the year refused at ingest whose case was never archived since.
    pub rejected: i64,
}

/// Refusals at submission of year `$1` whose case was never archived since.
const NEVER_ARCHIVED: &str = "FROM rejections r WHERE r.year = $1 AND NOT EXISTS (SELECT 1 FROM cases c \
    WHERE c.social_code = r.social_code AND c.task_code = r.task_code AND c.project_id = r.project_id)";

pub(super) async fn counts(filing: &Filing, year: i64) -> Result<Counts, DbError> {
    let db = &filing.db;
    let rows = sqlx::query(
        "SELECT status, COUNT(*), CAST(COALESCE(SUM(filing_late), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN filing_problem IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM cases WHERE year = $1 GROUP BY status",
    )
    .bind(year)
    .fetch_all(&db.pool)
    .await?;
    let mut c = Counts::default();
    for r in rows {
        let (status, n, late, refused): (String, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        c.archived += n;
        c.late += late;
        match status.as_str() {
            "archived" => {
                c.pending += n;
                c.refused += refused;
            }
            "filed" => c.filed += n,
            "disposed" => c.disposed += n,
            _ => {}
        }
    }
    if filing.clock.now() >= super::schedule::deadline(year, filing.settings.tz()) {
        c.late += c.pending;
    }
    c.transferred =
        sqlx::query("SELECT COUNT(*) FROM cases WHERE year = $1 AND transferred_in IS NOT NULL")
            .bind(year)
            .fetch_one(&db.pool)
            .await?
            .get(0);
    c.rejected = sqlx::query(
        sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT social_code, task_code, project_id {NEVER_ARCHIVED}) t"
        )),
    )
    .bind(year)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    Ok(c)
}

const LIST_MAX: i64 = 1000;

/// The full status of year `year` (`GET /api/v1/filings/{year}`).
/// The state of a year's filing (`GET /api/v1/filings/{year}`, `guidang filing status`).
#[derive(Debug, Serialize)]
pub struct FilingStatus {
    pub year: i64,
    pub time_zone: String,
    /// 30 June of the next year.
    pub deadline: String,
    pub days_left: i64,
    pub deadline_passed: bool,
    pub counts: Counts,
    pub batches: Vec<super::Batch>,
    /// Archived cases the filing check refused, with the reason (the first [`LIST_MAX`]).
    pub refused: Vec<RefusedCase>,
    /// Cases of the year rejected at submission and never archived since.
    pub rejected: Vec<RejectedCase>,
    pub completeness: Value,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RefusedCase {
    pub archive_id: String,
    pub project_id: String,
    pub task_code: String,
    pub problem: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RejectedCase {
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub problems: String,
    pub at: String,
}

pub(super) async fn status(filing: &Filing, year: i64) -> Result<FilingStatus, DbError> {
    let db = &filing.db;
    let tz = filing.settings.tz();
    let counts = counts(filing, year).await?;
    let now = filing.clock.now();
    let today = now.with_timezone(&tz).date_naive();
    let deadline_day = chrono::NaiveDate::from_ymd_opt(year as i32 + 1, 6, 30).unwrap_or_default();
    let batches = super::batches(filing, year).await?;
    let refused: Vec<RefusedCase> = sqlx::query_as(
        "SELECT archive_id, project_id, task_code, filing_problem AS problem FROM cases WHERE year = $1 \
         AND status = 'archived' AND filing_problem IS NOT NULL ORDER BY archive_id LIMIT $2",
    )
    .bind(year)
    .bind(LIST_MAX)
    .fetch_all(&db.pool)
    .await?;
    let rejected: Vec<RejectedCase> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT social_code, task_code, project_id, MAX(codes) AS problems, MAX(at) AS at {NEVER_ARCHIVED} \
         GROUP BY social_code, task_code, project_id ORDER BY social_code, task_code, project_id LIMIT $2"
    )))
    .bind(year)
    .bind(LIST_MAX)
    .fetch_all(&db.pool)
    .await?;
    Ok(FilingStatus {
        year,
        time_zone: filing.settings.time_zone.to_string(),
        deadline: deadline_day.to_string(),
        days_left: (deadline_day - today).num_days(),
        deadline_passed: now >= super::schedule::deadline(year, tz),
        counts,
        batches,
        refused,
        rejected,
        completeness: completeness(filing, year).await?,
    })
}

/// What a case system declares it completed in a year (`PUT /api/v1/filings/{year}/expected`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The declaring organisation; a submitter token may declare its own only.
    pub social_code: Option<String>,
    #[serde(default)]
    pub cases: Vec<ExpectedCase>,
    /// Completed cases per `task_code`, when the keys are not known.
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCase {
    pub task_code: String,
    pub project_id: String,
}

/// Replaces `social_code`'s declaration for `year`.
pub(super) async fn put_expected(
    filing: &Filing,
    year: i64,
    social_code: &str,
    e: &Expected,
) -> Result<(usize, usize), DbError> {
    let mut tx = filing.db.begin_write().await?;
    for t in ["filing_expected", "filing_expected_counts"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE year = $1 AND social_code = $2"
        )))
        .bind(year)
        .bind(social_code)
        .execute(&mut *tx)
        .await?;
    }
    let mut seen = std::collections::HashSet::new();
    let keys: Vec<&ExpectedCase> = e
        .cases
        .iter()
        .filter(|c| seen.insert((c.task_code.as_str(), c.project_id.as_str())))
        .collect();
    for chunk in keys.chunks(100) {
        let binds: Vec<Bind> = chunk
            .iter()
            .flat_map(|c| {
                [
                    Bind::I(year),
                    Bind::S(social_code.into()),
                    Bind::S(c.task_code.clone()),
                    Bind::S(c.project_id.clone()),
                ]
            })
            .collect();
        let sql = format!(
            "INSERT INTO filing_expected (year, social_code, task_code, project_id) VALUES {}",
            value_rows(chunk.len(), 4)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *tx)
            .await?;
    }
    for (task_code, n) in &e.counts {
        sqlx::query("INSERT INTO filing_expected_counts (year, social_code, task_code, expected) VALUES ($1, $2, $3, $4)")
            .bind(year)
            .bind(social_code)
            .bind(task_code)
            .bind(*n)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((keys.len(), e.counts.len()))
}

async fn completeness(filing: &Filing, year: i64) -> Result<Value, DbError> {
    let db = &filing.db;
    let declared: i64 = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM filing_expected WHERE year = $1) + (SELECT COUNT(*) FROM filing_expected_counts WHERE year = $1)",
    )
    .bind(year)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    if declared == 0 {
        return Ok(json!({"declared": false}));
    }
    let key = |r: &sqlx::any::AnyRow| json!({"social_code": r.get::<String, _>(0), "task_code": r.get::<String, _>(1), "project_id": r.get::<String, _>(2)});
    let missing_where = "FROM filing_expected e WHERE e.year = $1 AND NOT EXISTS (SELECT 1 FROM cases c WHERE \
        c.social_code = e.social_code AND c.task_code = e.task_code AND c.project_id = e.project_id)";
    let unexpected_where = "FROM cases c WHERE c.year = $1 AND c.social_code IN (SELECT DISTINCT social_code FROM filing_expected WHERE year = $1) \
        AND NOT EXISTS (SELECT 1 FROM filing_expected e WHERE e.year = $1 AND e.social_code = c.social_code \
        AND e.task_code = c.task_code AND e.project_id = c.project_id)";
    let count = |w: &str| format!("SELECT COUNT(*) {w}");
    let missing_count: i64 = sqlx::query(sqlx::AssertSqlSafe(count(missing_where)))
        .bind(year)
        .fetch_one(&db.pool)
        .await?
        .get(0);
    let missing: Vec<Value> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.social_code, e.task_code, e.project_id {missing_where} ORDER BY e.social_code, e.task_code, e.project_id LIMIT $2"
    )))
    .bind(year)
    .bind(LIST_MAX)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(key)
    .collect();
    let unexpected_count: i64 = sqlx::query(sqlx::AssertSqlSafe(count(unexpected_where)))
        .bind(year)
        .fetch_one(&db.pool)
        .await?
        .get(0);
    let unexpected: Vec<Value> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.social_code, c.task_code, c.project_id, c.archive_id {unexpected_where} ORDER BY c.social_code, c.task_code, c.project_id LIMIT $2"
    )))
    .bind(year)
    .bind(LIST_MAX)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let mut k = key(r);
        k["archive_id"] = json!(r.get::<String, _>(3));
        k
    })
    .collect();
    // Declared counts per task code against what arrived.
    let mut by_task: Vec<Value> = sqlx::query(
        "SELECT e.social_code, e.task_code, e.expected, (SELECT COUNT(*) FROM cases c WHERE c.year = $1 \
         AND c.social_code = e.social_code AND c.task_code = e.task_code) FROM filing_expected_counts e WHERE e.year = $1 \
         ORDER BY e.social_code, e.task_code",
    )
    .bind(year)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let (exp, got): (i64, i64) = (r.get(2), r.get(3));
        json!({"social_code": r.get::<String, _>(0), "task_code": r.get::<String, _>(1), "expected": exp,
               "archived": got, "missing": (exp - got).max(0), "unexpected": (got - exp).max(0)})
    })
    .collect();
    by_task.extend(
        sqlx::query(
            "SELECT c.social_code, c.task_code, COUNT(*) FROM cases c WHERE c.year = $1 AND c.social_code IN \
             (SELECT DISTINCT social_code FROM filing_expected_counts WHERE year = $1) AND NOT EXISTS \
             (SELECT 1 FROM filing_expected_counts e WHERE e.year = $1 AND e.social_code = c.social_code AND e.task_code = c.task_code) \
             GROUP BY c.social_code, c.task_code ORDER BY c.social_code, c.task_code",
        )
        .bind(year)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            let got: i64 = r.get(2);
            json!({"social_code": r.get::<String, _>(0), "task_code": r.get::<String, _>(1), "expected": 0,
                   "archived": got, "missing": 0, "unexpected": got})
        }),
    );
    let count_missing: i64 = by_task
        .iter()
        .map(|t| t["missing"].as_i64().unwrap_or(0))
        .sum();
    let count_unexpected: i64 = by_task
        .iter()
        .map(|t| t["unexpected"].as_i64().unwrap_or(0))
        .sum();
    Ok(json!({
        "declared": true,
        "missing_count": missing_count + count_missing,
        "unexpected_count": unexpected_count + count_unexpected,
        "missing": missing,
        "unexpected": unexpected,
        "by_task_code": by_task,
    }))
}
