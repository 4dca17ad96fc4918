//! Lawful disposal (article 37, 42; MoReq2010): a case is due once its fixed term has run, counted
//! from the end of its year (`Y` never). An archivist proposes a list with appraisal opinions; an
//! administrator who is not the proposer approves or rejects it; holds block it; execution
//! destroys the content and keeps a tombstone (the case row with its metadata, the digests of
//! every file and the approval trail) and a destruction register (销毁清册). There is no other
//! way to delete a package through the service.
//!
//! SQL here, not in `db/` (the list views are in `db/disposal.rs`): proposing, deciding and
//! executing re-check holds, due-ness and state inside the transaction that acts on them, each
//! statement depending on the previous one's answer; the rule "due" is one SQL condition (`DUE`)
//! shared by the due list and those checks.

use chrono::Datelike;
use serde::Deserialize;
use serde_json::Value;
use sqlx::Row;

use crate::auth::Principal;
use crate::clock::Clock;
use crate::db::{Db, DbError};
use crate::documents::{DocWriter, Document, csv};
use crate::evidence::Evidence;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::xml::Doc;

#[derive(Debug, thiserror::Error)]
pub enum DisposalError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("disposal: {0}")]
    Store(#[from] crate::storage::StoreError),
    #[error("disposal: {0}")]
    Document(#[from] crate::documents::DocumentError),
    #[error("disposal: {0}")]
    Io(#[from] std::io::Error),
    #[error("no such case")]
    NoCase,
    #[error("no such disposal list")]
    NoList,
    #[error("no such hold")]
    NoHold,
    #[error("{0}")]
    Invalid(String),
    /// The list cannot take this step in its state.
    #[error("{0}")]
    State(String),
    /// Four eyes: the proposer may not decide.
    #[error("{0}")]
    FourEyes(String),
    /// Cases that may not be put on the list, each with the reason.
    #[error("some cases cannot be disposed of")]
    Refused(Vec<(String, String)>),
}

impl From<sqlx::Error> for DisposalError {
    fn from(e: sqlx::Error) -> Self {
        DisposalError::Db(e.into())
    }
}

/// What the disposal service is built from.
pub struct Parts {
    pub db: Db,
    pub store: Store,
    pub clock: std::sync::Arc<dyn Clock>,
    pub evidence: Evidence,
    pub metrics: std::sync::Arc<Metrics>,
    pub fonds_code: String,
    /// The filing time zone, in which "this year" is reckoned.
    pub tz: chrono_tz::Tz,
    pub staging: std::path::PathBuf,
    /// Years a transferred case is kept after the authority's receipt.
    pub transfer_keep_years: u32,
}

/// The disposal service: due cases, holds, proposals, four-eyes decisions, execution with
/// tombstones and the destruction register.
pub struct Disposal {
    db: Db,
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    evidence: Evidence,
    metrics: std::sync::Arc<Metrics>,
    fonds_code: String,
    tz: chrono_tz::Tz,
    staging: std::path::PathBuf,
    transfer_keep_years: u32,
}

impl Disposal {
    pub fn new(p: Parts) -> Disposal {
        Disposal {
            db: p.db,
            store: p.store,
            clock: p.clock,
            evidence: p.evidence,
            metrics: p.metrics,
            fonds_code: p.fonds_code,
            tz: p.tz,
            staging: p.staging,
            transfer_keep_years: p.transfer_keep_years,
        }
    }

    pub async fn holds_of(&self, archive_id: &str) -> Result<Vec<Hold>, DbError> {
        self.db.holds_of(archive_id).await
    }

    pub async fn place_hold(
        &self,
        archive_id: &str,
        reason: &str,
        by: &Principal,
    ) -> Result<Hold, DisposalError> {
        place_hold(self, archive_id, reason, by).await
    }

    pub async fn release_hold(
        &self,
        archive_id: &str,
        hold_id: &str,
        reason: &str,
        by: &Principal,
    ) -> Result<(), DisposalError> {
        release_hold(self, archive_id, hold_id, reason, by).await
    }

    /// Cases whose fixed term has run, a page at a time.
    pub async fn due(&self, page: i64, per_page: i64) -> Result<DueList, DbError> {
        due(self, page, per_page).await
    }

    pub async fn propose(
        &self,
        p: &Proposal,
        by: &Principal,
    ) -> Result<DisposalList, DisposalError> {
        propose(self, p, by).await
    }

    pub async fn list(&self, list_id: &str) -> Result<Option<DisposalList>, DbError> {
        list(self, list_id).await
    }

    pub async fn lists(&self) -> Result<DisposalLists, DbError> {
        lists(self).await
    }

    /// Four eyes: an administrator other than the proposer approves or rejects.
    pub async fn decide(
        &self,
        list_id: &str,
        approve: bool,
        note: &str,
        by: &Principal,
    ) -> Result<DisposalList, DisposalError> {
        decide(self, list_id, approve, note, by).await
    }

    pub async fn execute(
        &self,
        list_id: &str,
        by: &Principal,
    ) -> Result<DisposalList, DisposalError> {
        execute(self, list_id, by).await
    }

    /// A document of a disposal list (the destruction register), entered in the audit trail.
    pub async fn document(
        &self,
        list_id: &str,
        name: &str,
        by: &Principal,
    ) -> Result<Option<crate::documents::Opened>, DisposalError> {
        let l = list(self, list_id).await?.ok_or(DisposalError::NoList)?;
        self.evidence
            .audit(
                by,
                "read_destruction_register",
                list_id,
                &crate::documents::trail_name(name),
            )
            .await;
        let Some(doc) = crate::documents::find(l.documents.as_ref(), name) else {
            return Ok(None);
        };
        Ok(Some(
            crate::documents::Opened::open(&self.store, doc).await?,
        ))
    }
}

/// The current calendar year in the filing time zone.
fn this_year(disposal: &Disposal) -> i64 {
    disposal.clock.now().with_timezone(&disposal.tz).year() as i64
}

/// The condition for "due": a fixed term that has run by 1 January of `this_year`.
/// (D10 of year Y runs to the end of Y+10; it is due from Y+11.)
/// Written so that each branch is a range on the `cases_due` index (retention, year): `year <
/// $1 - 10`, not `year + 10 < $1`, which would read every case.
const DUE: &str = "status IN ('archived', 'filed') AND ((retention = 'D10' AND year < $1 - 10) OR (retention = 'D30' AND year < $1 - 30))";

pub use crate::db::holds::Hold;

async fn place_hold(
    disposal: &Disposal,
    archive_id: &str,
    reason: &str,
    actor: &Principal,
) -> Result<Hold, DisposalError> {
    if reason.trim().is_empty() {
        return Err(DisposalError::Invalid("a hold needs a reason".into()));
    }
    let c = disposal
        .db
        .case(archive_id)
        .await?
        .ok_or(DisposalError::NoCase)?;
    if c.status == crate::db::cases::CaseStatus::Disposed {
        return Err(DisposalError::State(
            "the case was disposed of already".into(),
        ));
    }
    let hold_id = uuid::Uuid::now_v7().to_string();
    let at = crate::db::rfc3339(&disposal.clock.now());
    sqlx::query("INSERT INTO holds (hold_id, archive_id, reason, placed_by, placed_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&hold_id)
        .bind(archive_id)
        .bind(reason)
        .bind(&actor.id)
        .bind(&at)
        .execute(&disposal.db.pool)
        .await?;
    disposal
        .evidence
        .audit(actor, "hold", archive_id, &format!("placed {hold_id}"))
        .await;
    Ok(Hold {
        hold_id,
        archive_id: archive_id.into(),
        reason: reason.into(),
        placed_by: actor.id.clone(),
        placed_at: at,
        released_by: None,
        released_at: None,
        release_reason: None,
    })
}

async fn release_hold(
    disposal: &Disposal,
    archive_id: &str,
    hold_id: &str,
    reason: &str,
    actor: &Principal,
) -> Result<(), DisposalError> {
    if reason.trim().is_empty() {
        return Err(DisposalError::Invalid(
            "releasing a hold needs a reason".into(),
        ));
    }
    let n = sqlx::query("UPDATE holds SET released_by = $1, released_at = $2, release_reason = $3 WHERE hold_id = $4 AND archive_id = $5 AND released_at IS NULL")
        .bind(&actor.id)
        .bind(crate::db::rfc3339(&disposal.clock.now()))
        .bind(reason)
        .bind(hold_id)
        .bind(archive_id)
        .execute(&disposal.db.pool)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(DisposalError::NoHold);
    }
    disposal
        .evidence
        .audit(actor, "hold", archive_id, &format!("released {hold_id}"))
        .await;
    Ok(())
}

/// A case whose fixed term has run, as the due list reads it.
#[derive(Debug, sqlx::FromRow)]
struct DueRow {
    archive_id: String,
    archival_code: Option<String>,
    project_name: String,
    task_name: String,
    year: i64,
    retention: String,
    status: String,
    holds: i64,
    on_list: Option<String>,
}

/// One line of the due list.
#[derive(Debug, serde::Serialize)]
pub struct DueCase {
    pub archive_id: String,
    pub archival_code: Option<String>,
    pub project_name: String,
    pub task_name: String,
    pub year: i64,
    pub retention: String,
    /// The last day of the term (31 December of year + term).
    pub term_ended: String,
    pub status: String,
    pub held: bool,
    /// The open disposal list the case is on, if any.
    pub on_list: Option<String>,
}

/// A page of due cases (`GET /api/v1/disposal/due`).
#[derive(Debug, serde::Serialize)]
pub struct DueList {
    pub as_of_year: i64,
    pub items: Vec<DueCase>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Cases due for disposal now, a page at a time, oldest year first.
async fn due(disposal: &Disposal, page: i64, per_page: i64) -> Result<DueList, DbError> {
    let y = this_year(disposal);
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM cases WHERE {DUE}"
    )))
    .bind(y)
    .fetch_one(&disposal.db.pool)
    .await?;
    let rows: Vec<DueRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT archive_id, archival_code, project_name, task_name, year, retention, status, \
         (SELECT COUNT(*) FROM holds h WHERE h.archive_id = cases.archive_id AND h.released_at IS NULL) AS holds, \
         (SELECT MAX(l.list_id) FROM disposal_items i JOIN disposal_lists l ON l.list_id = i.list_id \
          WHERE i.archive_id = cases.archive_id AND l.state IN ('proposed', 'approved', 'executing')) AS on_list \
         FROM cases WHERE {DUE} ORDER BY year, archive_id LIMIT $2 OFFSET $3"
    )))
    .bind(y)
    .bind(per_page)
    .bind((page - 1) * per_page)
    .fetch_all(&disposal.db.pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let term = crate::retention::Retention::parse(&r.retention)
                .and_then(|r| r.years())
                .unwrap_or(0);
            DueCase {
                term_ended: format!("{}-12-31", r.year + term),
                held: r.holds > 0,
                archive_id: r.archive_id,
                archival_code: r.archival_code,
                project_name: r.project_name,
                task_name: r.task_name,
                year: r.year,
                retention: r.retention,
                status: r.status,
                on_list: r.on_list,
            }
        })
        .collect();
    Ok(DueList {
        as_of_year: y,
        items,
        total,
        page,
        per_page,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The appraisal opinion on the list as a whole (鉴定意见).
    pub opinion: String,
    pub cases: Vec<ProposedCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposedCase {
    pub archive_id: String,
    /// The appraisal opinion on this case.
    pub appraisal: String,
}

const MAX_LIST: usize = 100_000;

/// Why `archive_id` may not be disposed of now, if anything.
async fn refusal(
    disposal: &Disposal,
    archive_id: &str,
    list: Option<&str>,
) -> Result<Option<String>, DbError> {
    // One narrow read: the case's state and whether its term has run (the same DUE as the list).
    let Some(c) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT status, retention, year, CASE WHEN {DUE} THEN 1 ELSE 0 END FROM cases WHERE archive_id = $2"
    )))
    .bind(this_year(disposal))
    .bind(archive_id)
    .fetch_optional(&disposal.db.pool)
    .await?
    else {
        return Ok(Some("no such case".into()));
    };
    let (status, retention, year, due): (String, Option<String>, i64, i64) =
        (c.get(0), c.get(1), c.get(2), c.get(3));
    if status == "disposed" {
        return Ok(Some("disposed of already".into()));
    }
    if due == 0 {
        return Ok(Some(match retention.as_deref() {
            Some("Y") => "retained permanently (Y)".to_string(),
            Some(r) => format!("its retention {r} from {year} has not run yet"),
            None => "it has no retention".to_string(),
        }));
    }
    let held: i64 =
        sqlx::query("SELECT COUNT(*) FROM holds WHERE archive_id = $1 AND released_at IS NULL")
            .bind(archive_id)
            .fetch_one(&disposal.db.pool)
            .await?
            .get(0);
    if held > 0 {
        return Ok(Some("under a hold".into()));
    }
    // The sender keeps what it transferred at least five years after the receipt.
    let transferred: Option<(Option<String>, Option<String>)> =
        sqlx::query("SELECT transferred_in, transferred_at FROM cases WHERE archive_id = $1")
            .bind(archive_id)
            .fetch_optional(&disposal.db.pool)
            .await?
            .map(|r| (r.get(0), r.get(1)));
    if let Some((Some(tid), Some(at))) = transferred
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(&at)
    {
        let years = disposal.transfer_keep_years as i32;
        let t = t.with_timezone(&chrono::Utc);
        let until = chrono::Datelike::with_year(&t, chrono::Datelike::year(&t) + years)
            .unwrap_or(t + chrono::Duration::days(366 * years as i64));
        if disposal.clock.now() < until {
            return Ok(Some(format!(
                "transferred in {tid} on {}: kept until {}",
                &at[..10.min(at.len())],
                until.format("%Y-%m-%d")
            )));
        }
    }
    let other: Option<String> = sqlx::query_scalar(
        "SELECT l.list_id FROM disposal_items i JOIN disposal_lists l ON l.list_id = i.list_id WHERE i.archive_id = $1 \
         AND l.state IN ('proposed', 'approved', 'executing') AND l.list_id <> $2 LIMIT 1",
    )
    .bind(archive_id)
    .bind(list.unwrap_or(""))
    .fetch_optional(&disposal.db.pool)
    .await?;
    Ok(other.map(|l| format!("on disposal list {l} already")))
}

async fn propose(
    disposal: &Disposal,
    p: &Proposal,
    actor: &Principal,
) -> Result<DisposalList, DisposalError> {
    if p.opinion.trim().is_empty() {
        return Err(DisposalError::Invalid(
            "the list needs an appraisal opinion (opinion)".into(),
        ));
    }
    if p.cases.is_empty() || p.cases.len() > MAX_LIST {
        return Err(DisposalError::Invalid(format!(
            "a list holds 1 to {MAX_LIST} cases"
        )));
    }
    let mut refused = vec![];
    let mut seen = std::collections::HashSet::new();
    for c in &p.cases {
        if !seen.insert(c.archive_id.as_str()) {
            refused.push((c.archive_id.clone(), "listed twice".into()));
        } else if c.appraisal.trim().is_empty() {
            refused.push((c.archive_id.clone(), "no appraisal opinion".into()));
        } else if let Some(why) = refusal(disposal, &c.archive_id, None).await? {
            refused.push((c.archive_id.clone(), why));
        }
    }
    if !refused.is_empty() {
        return Err(DisposalError::Refused(refused));
    }
    let list_id = uuid::Uuid::now_v7().to_string();
    let at = crate::db::rfc3339(&disposal.clock.now());
    let mut tx = disposal.db.begin_write().await?;
    sqlx::query("INSERT INTO disposal_lists (list_id, state, opinion, proposed_by, proposed_by_name, proposed_at) VALUES ($1, 'proposed', $2, $3, $4, $5)")
        .bind(&list_id)
        .bind(&p.opinion)
        .bind(&actor.id)
        .bind(&actor.name)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
    for c in &p.cases {
        sqlx::query(
            "INSERT INTO disposal_items (list_id, archive_id, appraisal) VALUES ($1, $2, $3)",
        )
        .bind(&list_id)
        .bind(&c.archive_id)
        .bind(&c.appraisal)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    disposal
        .evidence
        .audit(
            actor,
            "dispose_propose",
            &list_id,
            &format!("{} cases", p.cases.len()),
        )
        .await;
    list(disposal, &list_id).await?.ok_or(DisposalError::NoList)
}

/// A list with its items and its approval trail.
/// A disposal list with its cases and documents (`GET /api/v1/disposal/lists/{id}`).
#[derive(Debug, serde::Serialize)]
pub struct DisposalList {
    #[serde(flatten)]
    pub list: crate::db::disposal::ListRow,
    pub documents: Option<Value>,
    pub items: Vec<crate::db::disposal::ItemRow>,
}

/// The list of lists (`GET /api/v1/disposal/lists`).
#[derive(Debug, serde::Serialize)]
pub struct DisposalLists {
    pub items: Vec<crate::db::disposal::ListLine>,
}

async fn list(disposal: &Disposal, list_id: &str) -> Result<Option<DisposalList>, DbError> {
    let Some(list) = disposal.db.disposal_list(list_id).await? else {
        return Ok(None);
    };
    let documents = list
        .documents_json
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok());
    Ok(Some(DisposalList {
        items: disposal.db.disposal_items(list_id).await?,
        documents,
        list,
    }))
}

async fn lists(disposal: &Disposal) -> Result<DisposalLists, DbError> {
    Ok(DisposalLists {
        items: disposal.db.disposal_lists().await?,
    })
}

fn same_person(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().to_lowercase();
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// An administrator's decision. Four eyes: not the proposer's token, nor a token under the
/// proposer's name.
async fn decide(
    disposal: &Disposal,
    list_id: &str,
    approve: bool,
    note: &str,
    actor: &Principal,
) -> Result<DisposalList, DisposalError> {
    let r = sqlx::query(
        "SELECT state, proposed_by, proposed_by_name FROM disposal_lists WHERE list_id = $1",
    )
    .bind(list_id)
    .fetch_optional(&disposal.db.pool)
    .await?
    .ok_or(DisposalError::NoList)?;
    let (state, by, by_name): (String, String, String) = (r.get(0), r.get(1), r.get(2));
    if state != "proposed" {
        return Err(DisposalError::State(format!(
            "the list is {state}; only a proposed list can be decided"
        )));
    }
    if by == actor.id || same_person(&by_name, &actor.name) {
        disposal
            .evidence
            .audit(actor, "dispose_decide", list_id, "403 four_eyes")
            .await;
        return Err(DisposalError::FourEyes(
            "the proposer of a disposal list may not decide it: another administrator must".into(),
        ));
    }
    let decision = if approve { "approved" } else { "rejected" };
    let n = sqlx::query("UPDATE disposal_lists SET state = $1, decided_by = $2, decided_by_name = $3, decided_at = $4, decision_note = $5 WHERE list_id = $6 AND state = 'proposed'")
        .bind(decision)
        .bind(&actor.id)
        .bind(&actor.name)
        .bind(crate::db::rfc3339(&disposal.clock.now()))
        .bind(note)
        .bind(list_id)
        .execute(&disposal.db.pool)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(DisposalError::State(
            "the list was decided meanwhile".into(),
        ));
    }
    disposal
        .evidence
        .audit(actor, "dispose_decide", list_id, decision)
        .await;
    list(disposal, list_id).await?.ok_or(DisposalError::NoList)
}

/// Destroys the content of an approved list's cases, except those held (or no longer due) now.
/// Each case is marked disposed (with its log entry) before its package is deleted, and the list
/// is `executed` only once every delete is done: run again, an interrupted execution finishes.
async fn execute(
    disposal: &Disposal,
    list_id: &str,
    actor: &Principal,
) -> Result<DisposalList, DisposalError> {
    let state: String = sqlx::query_scalar("SELECT state FROM disposal_lists WHERE list_id = $1")
        .bind(list_id)
        .fetch_optional(&disposal.db.pool)
        .await?
        .ok_or(DisposalError::NoList)?;
    if !matches!(state.as_str(), "approved" | "executing") {
        return Err(DisposalError::State(format!(
            "the list is {state}; only an approved list can be executed"
        )));
    }
    sqlx::query("UPDATE disposal_lists SET state = 'executing' WHERE list_id = $1")
        .bind(list_id)
        .execute(&disposal.db.pool)
        .await?;
    let items: Vec<(String, Option<String>)> = sqlx::query(
        "SELECT archive_id, outcome FROM disposal_items WHERE list_id = $1 ORDER BY archive_id",
    )
    .bind(list_id)
    .fetch_all(&disposal.db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let at = crate::db::rfc3339(&disposal.clock.now());
    for (archive_id, outcome) in items {
        let Some(c) = disposal.db.case(&archive_id).await? else {
            continue;
        };
        if outcome.as_deref() != Some("destroyed") {
            if let Some(why) = refusal(disposal, &archive_id, Some(list_id)).await? {
                sqlx::query(
                    "UPDATE disposal_items SET outcome = $1 WHERE list_id = $2 AND archive_id = $3",
                )
                .bind(format!("kept: {why}"))
                .bind(list_id)
                .bind(&archive_id)
                .execute(&disposal.db.pool)
                .await?;
                continue;
            }
            let mut tx = disposal.db.begin_write().await?;
            sqlx::query("UPDATE cases SET status = 'disposed', disposed_at = $1, disposal_list = $2 WHERE archive_id = $3 AND status IN ('archived', 'filed')")
                .bind(&at)
                .bind(list_id)
                .bind(&archive_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE disposal_items SET outcome = 'destroyed' WHERE list_id = $1 AND archive_id = $2")
                .bind(list_id)
                .bind(&archive_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO case_events (event_id, archive_id, kind, at, agent, detail) VALUES ($1, $2, 'disposed', $3, $4, $5)")
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&archive_id)
                .bind(&at)
                .bind(&actor.id)
                .bind(format!("content destroyed under disposal list {list_id}"))
                .execute(&mut *tx)
                .await?;
            let entry = format!(
                "guidang-disposed-v1\n{archive_id}\n{}\n{list_id}\n",
                c.tagmanifest_sha256
            );
            disposal
                .evidence
                .log_on(&mut tx, "disposed", None, &entry)
                .await?;
            tx.commit().await?;
            disposal.evidence.committed();
            disposal
                .metrics
                .cases_disposed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Every version of the package goes; their digests stay in the log and the register.
        for (_, key) in disposal.db.version_keys(&c.archive_id).await? {
            disposal.store.delete(&key).await?;
        }
        disposal.store.delete(&c.package_key).await?;
    }
    let docs = write_register(disposal, list_id).await?;
    let docs_json = serde_json::to_string(&docs).unwrap_or_default();
    let reg_sha = docs
        .iter()
        .find(|d| d.name == "register.csv")
        .map(|d| d.sha256.clone())
        .unwrap_or_default();
    let mut tx = disposal.db.begin_write().await?;
    sqlx::query("UPDATE disposal_lists SET state = 'executed', executed_by = $1, executed_at = $2, documents_json = $3 WHERE list_id = $4")
        .bind(&actor.id)
        .bind(&at)
        .bind(&docs_json)
        .bind(list_id)
        .execute(&mut *tx)
        .await?;
    let entry = format!("guidang-destruction-register-v1\n{list_id}\n{reg_sha}\n");
    disposal
        .evidence
        .log_on(&mut tx, "destruction_register", None, &entry)
        .await?;
    tx.commit().await?;
    disposal.evidence.committed();
    disposal
        .evidence
        .audit(actor, "dispose_execute", list_id, "executed")
        .await;
    list(disposal, list_id).await?.ok_or(DisposalError::NoList)
}

/// The destruction register (销毁清册), XML and CSV.
/// The head of the destruction register: the list's appraisal and approval.
#[derive(sqlx::FromRow)]
struct RegisterHead {
    opinion: Option<String>,
    proposed_by_name: Option<String>,
    proposed_at: Option<String>,
    decided_by_name: Option<String>,
    decided_at: Option<String>,
    decision_note: Option<String>,
}

/// One case as the destruction register lists it.
#[derive(sqlx::FromRow)]
struct RegisterRow {
    archive_id: String,
    archival_code: Option<String>,
    project_name: String,
    task_name: String,
    year: i64,
    retention: Option<String>,
    files: i64,
    bytes: i64,
    tagmanifest_sha256: String,
    appraisal: String,
    outcome: Option<String>,
    disposed_at: Option<String>,
}

async fn write_register(
    disposal: &Disposal,
    list_id: &str,
) -> Result<Vec<Document>, DisposalError> {
    let h: RegisterHead = sqlx::query_as(
        "SELECT opinion, proposed_by_name, proposed_at, decided_by_name, decided_at, decision_note \
         FROM disposal_lists WHERE list_id = $1",
    )
    .bind(list_id)
    .fetch_one(&disposal.db.pool)
    .await
    .map_err(DbError::from)?;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let prefix = format!("disposals/{list_id}");
    let mut xml = Doc::new(DocWriter::new(&disposal.staging, "register.xml")?)?;
    xml.open(
        "destruction_register",
        &[
            ("xmlns", "urn:guidang:disposal:1"),
            ("fonds_code", &disposal.fonds_code),
            ("list_id", list_id),
        ],
    )?
    .text("title", "销毁清册")?
    .text("opinion", &o(&h.opinion))?
    .text("proposed_by", &o(&h.proposed_by_name))?
    .text("proposed_at", &o(&h.proposed_at))?
    .text("approved_by", &o(&h.decided_by_name))?
    .text("approved_at", &o(&h.decided_at))?
    .text("decision_note", &o(&h.decision_note))?;
    let mut cw = DocWriter::new(&disposal.staging, "register.csv")?;
    cw.put("\u{feff}档号,归档标识,办件名称,事项名称,年度,保管期限,文件数,字节数,包摘要算法,包摘要,鉴定意见,处置结果,销毁时间\r\n")?;
    let mut after = String::new();
    loop {
        let rows: Vec<RegisterRow> = sqlx::query_as(
            "SELECT i.archive_id, c.archival_code, c.project_name, c.task_name, c.year, c.retention, \
             (SELECT COUNT(*) FROM case_files f WHERE f.archive_id = i.archive_id) AS files, \
             (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM case_files f WHERE f.archive_id = i.archive_id) AS bytes, \
             c.tagmanifest_sha256, i.appraisal, i.outcome, c.disposed_at \
             FROM disposal_items i JOIN cases c ON c.archive_id = i.archive_id \
             WHERE i.list_id = $1 AND i.archive_id > $2 ORDER BY i.archive_id LIMIT 1000",
        )
        .bind(list_id)
        .bind(&after)
        .fetch_all(&disposal.db.pool)
        .await
        .map_err(DbError::from)?;
        let Some(last) = rows.last() else { break };
        after = last.archive_id.clone();
        for r in &rows {
            let outcome = o(&r.outcome);
            let destroyed_at = if outcome == "destroyed" {
                o(&r.disposed_at)
            } else {
                String::new()
            };
            let (code, retention) = (o(&r.archival_code), o(&r.retention));
            let (year, files, bytes) =
                (r.year.to_string(), r.files.to_string(), r.bytes.to_string());
            xml.open(
                "item",
                &[
                    ("archive_id", &r.archive_id),
                    ("archival_code", &code),
                    ("outcome", &outcome),
                ],
            )?
            .text("project_name", &r.project_name)?
            .text("task_name", &r.task_name)?
            .text("year", &year)?
            .text("retention", &retention)?
            .text("files", &files)?
            .text("bytes", &bytes)?
            .text_with(
                "package_digest",
                &[("algorithm", "SHA-256")],
                &r.tagmanifest_sha256,
            )?
            .text("appraisal", &r.appraisal)?
            .text("destroyed_at", &destroyed_at)?
            .close("item")?;
            let fields = [
                code.as_str(),
                &r.archive_id,
                &r.project_name,
                &r.task_name,
                &year,
                &retention,
                &files,
                &bytes,
                "SHA-256",
                &r.tagmanifest_sha256,
                &r.appraisal,
                &outcome,
                &destroyed_at,
            ];
            cw.put(&fields.iter().map(|f| csv(f)).collect::<Vec<_>>().join(","))?;
            cw.put("\r\n")?;
        }
    }
    xml.close("destruction_register")?;
    let mut xml = xml.into_inner();
    xml.end_line()?;
    Ok(vec![
        xml.store(&disposal.store, &prefix).await?,
        cw.store(&disposal.store, &prefix).await?,
    ])
}
