//! Before transfer (article 43): draft batches of filed cases, the classification decision and
//! access opinion of every case (by rule, by hand), what still blocks a batch, and approval by an
//! administrator who did not prepare it. The next step — volumes, delivery, receipt — builds on
//! an approved batch.
//!
//! Every decision records who and when; any change to an approved batch reopens it. Approval is
//! entered in the transparency log with the digest of the decisions it approved
//! (`guidang-transfer-v1`), so what was approved can be proved later.

pub mod build;
pub mod decisions;
pub mod online;
pub mod receive;
pub mod registration;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::auth::Principal;
use crate::db::transfers::{
    self as tdb, BatchCase, DecisionRow, Filters, TransferRow, insert_draft_on,
};
use crate::db::{Db, DbError};
use crate::evidence::{Evidence, trail_event};
use crate::versions::{VersionError, Versions};
use decisions::Rule;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("no transfer batch {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Refused with a list (year not filed, cases outside the batch, bad decisions).
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        problems: Vec<serde_json::Value>,
    },
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    FourEyes(String),
    /// Approval refused: the batch is not ready.
    #[error("the batch is not ready: {}", .0.iter().map(|b| b.message.clone()).collect::<Vec<_>>().join("; "))]
    NotReady(Vec<Blocker>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Version(#[from] VersionError),
}

#[derive(Debug, Clone, Deserialize)]
pub struct DraftRequest {
    pub year: i64,
    #[serde(flatten)]
    pub filters: Filters,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blocker {
    /// `no_decision`, `not_digitised`, `fixity_failed`, `filing_not_sealed`.
    pub code: &'static str,
    pub message: String,
    pub cases: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CaseLine {
    #[serde(flatten)]
    pub case: BatchCase,
    pub decision: Option<DecisionRow>,
}

#[derive(Debug, Serialize)]
pub struct Excluded {
    pub archive_id: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub cases: usize,
    pub bytes: i64,
    pub files: i64,
    pub excluded: usize,
    pub decided: usize,
    pub digitised_pages: i64,
}

#[derive(Debug, Serialize)]
pub struct BatchView {
    #[serde(flatten)]
    pub batch: TransferRow,
    pub filters: Filters,
    pub rules: Vec<Rule>,
    pub counts: Counts,
    pub blockers: Vec<Blocker>,
    /// No blocker: an administrator may approve it (if not approved already).
    pub ready: bool,
    pub cases: Vec<CaseLine>,
    pub excluded: Vec<Excluded>,
    /// Built volumes (while building: those stored so far).
    pub volumes: Vec<crate::db::transfers::VolumeRow>,
    /// Cases larger than a volume, each given a volume of its own.
    pub build_warnings: Vec<String>,
}

#[derive(Clone)]
pub struct Transfers {
    db: Db,
    evidence: Evidence,
    versions: Versions,
    store: crate::storage::Store,
    keys: std::sync::Arc<crate::keys::Keys>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// This server, as the owner of build and delivery leases (one server per batch at a time).
    owner: String,
    /// The leased jobs running in this process: a lease is re-entrant for its owner, so a second
    /// start of the same job here must be refused here.
    jobs: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
}

/// How long a case stays in the list of a blocker's message.
const NAMED: usize = 10;

fn named(ids: &[String]) -> String {
    let mut s = ids
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > NAMED {
        s.push_str(&format!(" and {} more", ids.len() - NAMED));
    }
    s
}

impl Transfers {
    pub fn new(
        db: Db,
        evidence: Evidence,
        versions: Versions,
        store: crate::storage::Store,
        keys: std::sync::Arc<crate::keys::Keys>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        owner: String,
    ) -> Transfers {
        Transfers {
            db,
            evidence,
            versions,
            store,
            keys,
            metrics,
            owner,
            jobs: Default::default(),
        }
    }

    /// Resumes every build a stopped process left unfinished.
    pub async fn resume_builds(&self) -> Result<usize, TransferError> {
        let ids = self.db.building().await?;
        for id in &ids {
            self.spawn_build(id.clone());
        }
        Ok(ids.len())
    }

    /// A draft batch of the filed cases of a year matching the filters. Cases on hold, disposed,
    /// transferred or in another open batch are left out with the reason; the filing facts of
    /// every case taken are sealed into its package first (a new version where not yet).
    pub async fn draft(
        &self,
        req: &DraftRequest,
        who: &Principal,
    ) -> Result<BatchView, TransferError> {
        let this_year = chrono::Utc::now().format("%Y").to_string();
        let this_year: i64 = this_year.parse().unwrap_or(2100);
        if req.year < 1990 || req.year > this_year {
            return Err(TransferError::Invalid(format!(
                "year {} is not a year whose cases can be transferred",
                req.year
            )));
        }
        let unfiled = self.db.unfiled_count(req.year).await?;
        if unfiled > 0 {
            self.evidence
                .audit(
                    who,
                    "transfer_draft",
                    &req.year.to_string(),
                    "422 year_not_filed",
                )
                .await;
            return Err(TransferError::Refused {
                code: "year_not_filed",
                message: format!(
                    "{unfiled} case(s) of {} are not filed yet; file the year (POST /api/v1/filings) before transferring it",
                    req.year
                ),
                problems: vec![serde_json::json!({
                    "code": "year_not_filed",
                    "field": "year",
                    "message": format!("{unfiled} case(s) of {} are archived but not filed", req.year),
                    "count": unfiled,
                })],
            });
        }
        let candidates = self.db.transfer_candidates(req.year, &req.filters).await?;
        let mut take = Vec::new();
        let mut excluded = Vec::new();
        for c in candidates {
            let why = if c.status == "disposed" {
                Some("disposed of".to_string())
            } else if c.on_hold > 0 {
                Some("on hold".to_string())
            } else if let Some(t) = &c.transferred_in {
                Some(format!("already transferred in {t}"))
            } else {
                c.open_batch
                    .as_ref()
                    .map(|t| format!("in open transfer batch {t}"))
            };
            match why {
                Some(w) => excluded.push((c.archive_id, w)),
                None => take.push(c.archive_id),
            }
        }
        if take.is_empty() {
            return Err(TransferError::Refused {
                code: "nothing_to_transfer",
                message: format!(
                    "no filed case of {} matches and is free to transfer ({} left out)",
                    req.year,
                    excluded.len()
                ),
                problems: excluded
                    .iter()
                    .take(100)
                    .map(|(id, why)| serde_json::json!({"code": "excluded", "archive_id": id, "message": why}))
                    .collect(),
            });
        }
        // The archival code and filing facts travel signed: seal them where not yet.
        for id in &take {
            self.versions.seal_filing_if_needed(id, who).await?;
        }
        let row = TransferRow {
            transfer_id: format!(
                "TR-{}-{}",
                req.year,
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            ),
            year: req.year,
            filters_json: serde_json::to_string(&req.filters).unwrap_or_else(|_| "{}".into()),
            state: "draft".into(),
            prepared_by: who.id.clone(),
            prepared_by_name: Some(who.name.clone()),
            created_at: crate::db::now_rfc3339(),
            approved_by: None,
            approved_by_name: None,
            approved_at: None,
            approved_digest: None,
            reopened: 0,
            rules_json: "[]".into(),
            volume_size: None,
            volumes_planned: None,
            built_at: None,
            build_warnings: None,
            build_error: None,
            send_state: None,
            send_error: None,
            send_attempts: 0,
            send_next_ms: 0,
            sent_bytes: 0,
        };
        let written: Result<(), DbError> = async {
            let mut tx = self.db.begin_write().await?;
            insert_draft_on(&mut tx, &row, &take, &excluded).await?;
            self.evidence
                .trail_on(
                    &mut tx,
                    &trail_event(
                        who,
                        "transfer_draft",
                        &row.transfer_id,
                        &format!("201 {} case(s), {} left out", take.len(), excluded.len()),
                    ),
                )
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = written {
            if e.is_unique_violation() {
                return Err(TransferError::State(
                    "another draft took some of these cases at the same moment; try again".into(),
                ));
            }
            return Err(e.into());
        }
        self.view(&row.transfer_id).await
    }

    pub async fn list(&self) -> Result<Vec<TransferRow>, TransferError> {
        Ok(self.db.transfers().await?)
    }

    /// The batch: counts, bytes, every case with its decision, what was left out and why, and
    /// what still blocks it.
    pub async fn view(&self, id: &str) -> Result<BatchView, TransferError> {
        let batch = self
            .db
            .transfer(id)
            .await?
            .ok_or_else(|| TransferError::NotFound(id.into()))?;
        let cases = self.db.batch_cases(id).await?;
        let mut decisions: BTreeMap<String, DecisionRow> = self
            .db
            .decisions(id)
            .await?
            .into_iter()
            .map(|d| (d.archive_id.clone(), d))
            .collect();
        let failed = self.db.batch_fixity_failed(id).await?;
        let blockers = blockers(&cases, &decisions, &failed);
        let excluded = self
            .db
            .batch_excluded(id)
            .await?
            .into_iter()
            .map(|(archive_id, reason)| Excluded { archive_id, reason })
            .collect::<Vec<_>>();
        let counts = Counts {
            cases: cases.len(),
            bytes: cases.iter().map(|c| c.package_size).sum(),
            files: cases.iter().map(|c| c.file_count.unwrap_or(0)).sum(),
            excluded: excluded.len(),
            decided: decisions.len(),
            digitised_pages: cases.iter().map(|c| c.digitised_pages).sum(),
        };
        let lines = cases
            .into_iter()
            .map(|c| CaseLine {
                decision: decisions.remove(&c.archive_id),
                case: c,
            })
            .collect();
        let volumes = self.db.volumes(id).await?;
        Ok(BatchView {
            volumes,
            build_warnings: batch
                .build_warnings
                .as_deref()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            filters: serde_json::from_str(&batch.filters_json).unwrap_or_default(),
            rules: serde_json::from_str(&batch.rules_json).unwrap_or_default(),
            ready: blockers.is_empty(),
            batch,
            counts,
            blockers,
            cases: lines,
            excluded,
        })
    }

    /// Records decisions: a rule set (replacing the batch's earlier rules and what they decided)
    /// and per-case decisions (which rules never override). Cases outside the batch are refused
    /// with the list; nothing is written unless everything is valid. A change to an approved
    /// batch reopens it.
    pub async fn decide(
        &self,
        id: &str,
        req: &decisions::DecisionRequest,
        who: &Principal,
    ) -> Result<BatchView, TransferError> {
        let batch = self
            .db
            .transfer(id)
            .await?
            .ok_or_else(|| TransferError::NotFound(id.into()))?;
        if !matches!(batch.state.as_str(), "draft" | "approved") {
            return Err(TransferError::State(format!(
                "transfer {id} is {}; its decisions can no longer change",
                batch.state
            )));
        }
        let cases = self.db.batch_cases(id).await?;
        let in_batch: BTreeSet<&str> = cases.iter().map(|c| c.archive_id.as_str()).collect();
        let mut problems = Vec::new();
        let outside: Vec<&str> = req
            .cases
            .iter()
            .map(|c| c.archive_id.as_str())
            .filter(|a| !in_batch.contains(a))
            .collect();
        for a in &outside {
            problems.push(serde_json::json!({
                "code": "not_in_batch",
                "archive_id": a,
                "message": format!("case {a} is not in transfer {id}"),
            }));
        }
        let mut rows: Vec<DecisionRow> = Vec::new();
        let at = crate::db::now_rfc3339();
        let by = who.label();
        // Rules, in order: a later rule overrides an earlier one for the same case.
        let manual: BTreeSet<String> = self
            .db
            .decisions(id)
            .await?
            .into_iter()
            .filter(|d| d.source == "manual")
            .map(|d| d.archive_id)
            .collect();
        if let Some(rules) = &req.rules {
            for (i, r) in rules.iter().enumerate() {
                r.decision
                    .validate(&format!("rules[{i}]"), batch.year, &mut problems);
            }
            if problems.is_empty() {
                let mut by_case: BTreeMap<&str, DecisionRow> = BTreeMap::new();
                for (i, r) in rules.iter().enumerate() {
                    for c in cases.iter().filter(|c| r.matches(c)) {
                        if manual.contains(&c.archive_id) {
                            continue;
                        }
                        by_case.insert(
                            &c.archive_id,
                            r.decision.row(c, &format!("rule {}", i + 1), &by, &at),
                        );
                    }
                }
                rows.extend(by_case.into_values());
            }
        }
        for (i, d) in req.cases.iter().enumerate() {
            d.decision
                .validate(&format!("cases[{i}]"), batch.year, &mut problems);
        }
        if !problems.is_empty() {
            let code = if outside.is_empty() {
                "invalid_decision"
            } else {
                "not_in_batch"
            };
            self.evidence
                .audit(who, "transfer_decide", id, &format!("422 {code}"))
                .await;
            return Err(TransferError::Refused {
                code,
                message: format!(
                    "{} problem(s) with the decisions; nothing was recorded",
                    problems.len()
                ),
                problems,
            });
        }
        for d in &req.cases {
            if let Some(c) = cases.iter().find(|c| c.archive_id == d.archive_id) {
                rows.retain(|r| r.archive_id != d.archive_id);
                rows.push(d.decision.row(c, "manual", &by, &at));
            }
        }
        let mut tx = self.db.begin_write().await?;
        if let Some(rules) = &req.rules {
            tdb::clear_rule_decisions_on(&mut tx, id).await?;
            tdb::set_rules_on(
                &mut tx,
                id,
                &serde_json::to_string(rules).unwrap_or_else(|_| "[]".into()),
            )
            .await?;
        }
        tdb::upsert_decisions_on(&mut tx, id, &rows).await?;
        let reopened = batch.state == "approved";
        if reopened {
            tdb::set_state_on(&mut tx, id, "approved", "draft", None, None, None, None).await?;
        }
        self.evidence
            .trail_on(
                &mut tx,
                &trail_event(
                    who,
                    "transfer_decide",
                    id,
                    &format!(
                        "200 {} decision(s){}",
                        rows.len(),
                        if reopened { ", approval withdrawn" } else { "" }
                    ),
                ),
            )
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        self.view(id).await
    }

    /// Approval by an administrator who is neither the preparer's token nor a token under the
    /// preparer's name, of a batch with nothing blocking it. Entered in the log with the digest
    /// of every case's decision.
    pub async fn approve(&self, id: &str, who: &Principal) -> Result<BatchView, TransferError> {
        let view = self.view(id).await?;
        let b = &view.batch;
        if b.state != "draft" {
            return Err(TransferError::State(format!(
                "transfer {id} is {}; only a draft is approved",
                b.state
            )));
        }
        let same_name = b.prepared_by_name.as_deref().is_some_and(|n| {
            !n.trim().is_empty() && n.trim().eq_ignore_ascii_case(who.name.trim())
        });
        if b.prepared_by == who.id || same_name {
            self.evidence
                .audit(who, "transfer_approve", id, "403 four_eyes")
                .await;
            return Err(TransferError::FourEyes(
                "four eyes: the batch was prepared under this token or this name; another administrator approves it".into(),
            ));
        }
        if !view.blockers.is_empty() {
            self.evidence
                .audit(who, "transfer_approve", id, "409 not_ready")
                .await;
            return Err(TransferError::NotReady(view.blockers));
        }
        let digest = decisions_digest(&view);
        let at = crate::db::now_rfc3339();
        let entry = format!("guidang-transfer-v1\n{id}\napproved\n{digest}\n");
        let mut tx = self.db.begin_write().await?;
        tdb::set_state_on(
            &mut tx,
            id,
            "draft",
            "approved",
            Some(&who.id),
            Some(&who.name),
            Some(&at),
            Some(&digest),
        )
        .await?;
        self.evidence
            .log_on(&mut tx, "transfer", None, &entry)
            .await?;
        self.evidence
            .trail_on(
                &mut tx,
                &trail_event(who, "transfer_approve", id, "200 approved"),
            )
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        self.evidence.committed();
        self.view(id).await
    }
}

fn blockers(
    cases: &[BatchCase],
    decisions: &BTreeMap<String, DecisionRow>,
    fixity_failed: &[String],
) -> Vec<Blocker> {
    let mut out = Vec::new();
    let undecided: Vec<String> = cases
        .iter()
        .filter(|c| !decisions.contains_key(&c.archive_id))
        .map(|c| c.archive_id.clone())
        .collect();
    if !undecided.is_empty() {
        out.push(Blocker {
            code: "no_decision",
            message: format!(
                "{} case(s) have no classification decision and access opinion: {}",
                undecided.len(),
                named(&undecided)
            ),
            cases: undecided,
        });
    }
    let paper: Vec<String> = cases
        .iter()
        .filter(|c| c.paper_pages.is_some_and(|p| p > c.digitised_pages))
        .map(|c| c.archive_id.clone())
        .collect();
    if !paper.is_empty() {
        out.push(Blocker {
            code: "not_digitised",
            message: format!(
                "{} case(s) have paper originals with fewer digitised pages than the originals have: {}",
                paper.len(),
                named(&paper)
            ),
            cases: paper,
        });
    }
    if !fixity_failed.is_empty() {
        out.push(Blocker {
            code: "fixity_failed",
            message: format!(
                "{} case(s) failed their latest fixity audit: {}",
                fixity_failed.len(),
                named(fixity_failed)
            ),
            cases: fixity_failed.to_vec(),
        });
    }
    let unsealed: Vec<String> = cases
        .iter()
        .filter(|c| c.filing_batch.is_none() || c.sealed_filing != c.filing_batch)
        .map(|c| c.archive_id.clone())
        .collect();
    if !unsealed.is_empty() {
        out.push(Blocker {
            code: "filing_not_sealed",
            message: format!(
                "{} case(s) have filing facts no package version signs yet: {}",
                unsealed.len(),
                named(&unsealed)
            ),
            cases: unsealed,
        });
    }
    out
}

/// SHA-256 over one line per case, in archive-id order: the package version and digest it was
/// decided on, the archival code and the decision. What the log entry of an approval names.
pub fn decisions_digest(view: &BatchView) -> String {
    let mut h = Sha256::new();
    h.update(
        format!(
            "guidang-transfer-decisions-v1\n{}\n",
            view.batch.transfer_id
        )
        .as_bytes(),
    );
    let mut lines: Vec<&CaseLine> = view.cases.iter().collect();
    lines.sort_by(|a, b| a.case.archive_id.cmp(&b.case.archive_id));
    for l in lines {
        let d = l.decision.as_ref();
        h.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                l.case.archive_id,
                l.case.version,
                l.case.archival_code.as_deref().unwrap_or(""),
                d.map(|d| d.classification.as_str()).unwrap_or(""),
                d.map(|d| d.level.as_str()).unwrap_or(""),
                d.map(|d| d.access.as_str()).unwrap_or(""),
                d.and_then(|d| d.access_reason.as_deref()).unwrap_or(""),
                d.and_then(|d| d.access_until)
                    .map(|y| y.to_string())
                    .unwrap_or_default(),
                d.map(|d| d.basis.as_str()).unwrap_or(""),
            )
            .as_bytes(),
        );
    }
    hex::encode(h.finalize())
}

pub use decisions::DecisionRequest;

/// A lease held while a long job (a build, a delivery) runs: renewed in the background every
/// third of its length, so a job of hours keeps it while a crashed server loses it within one
/// length. `lost()` turns true if another server took it meanwhile (this one stalled longer than
/// the lease); the job then stops at its next step.
pub(crate) struct HeldLease {
    name: String,
    jobs: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HeldLease {
    /// Takes the job `name` for this server; `None` while another server (or another task of
    /// this one) holds it.
    pub(crate) async fn take(t: &Transfers, name: &str) -> Result<Option<HeldLease>, DbError> {
        {
            let mut jobs = t.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if !jobs.insert(name.to_string()) {
                return Ok(None);
            }
        }
        let forget = || {
            t.jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
        };
        let ms = t.job_lease_ms();
        let lease = match crate::db::lease::Lease::acquire_ms(&t.db, name, &t.owner, ms).await {
            Ok(Ok(l)) => l,
            Ok(Err(_)) => {
                forget();
                return Ok(None);
            }
            Err(e) => {
                forget();
                return Err(e);
            }
        };
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let lost2 = lost.clone();
        let every = std::time::Duration::from_millis((ms / 3).max(1));
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => {
                        let _ = lease.release().await;
                        return;
                    }
                    _ = tokio::time::sleep(every) => {
                        // A database error is not a loss: the lease may still be ours.
                        if let Ok(false) = lease.renew().await {
                            lost2.store(true, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        });
        Ok(Some(HeldLease {
            name: name.to_string(),
            jobs: t.jobs.clone(),
            lost,
            stop: Some(stop),
            task: Some(task),
        }))
    }

    pub(crate) fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Gives the lease back at once (the next server need not wait for it to expire).
    pub(crate) async fn release(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Dropped without release (an error path): stop renewing; the lease expires.
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

impl Transfers {
    /// How long a build or delivery lease lasts without renewal: how long another server waits
    /// before it takes over a job whose server died.
    pub(crate) fn job_lease_ms(&self) -> u64 {
        self.versions
            .settings()
            .transfer_send_every_secs
            .max(1)
            .saturating_mul(6_000)
    }
}
