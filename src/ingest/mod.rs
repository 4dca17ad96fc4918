//! Ingest: a submission (an HTTP body or a ZIP or folder on disk) through the pipeline's stages,
//! stored, then recorded with its log entry and audit-trail row in one commit. `guidang serve` and
//! `guidang import` both come here, so online and offline archiving apply exactly the same rules.
//! The audit-trail row of every submission is decided here, exactly one per submission.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::auth::{Channel, Principal, Role};
use crate::config::{Action, Settings};
use crate::db::cases::{CaseRow, EventRow, FileRow};
use crate::db::{Db, DbError};
use crate::evidence::Evidence;
use crate::evidence::recorder::Write;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::pipeline::receive::{ReceiveError, spool};
use crate::pipeline::stream_unpack::{Early, EarlyInput};
use crate::pipeline::unpack::Source;
use crate::pipeline::{self, PrepareError, PrepareInput, Prepared};
use crate::problem::{Code, Problem, Problems};
use crate::retention::Rules;
use crate::storage::{Store, StoreError, package_key};

/// Why an ingest did not archive anything.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a readable submission at all (HTTP 400).
    #[error("{0}")]
    Unreadable(String),
    /// Every problem found (HTTP 422).
    #[error("the submission was rejected with {} problem(s)", .0.errors.len())]
    Rejected(Problems),
    /// The case exists with other content (HTTP 409).
    #[error(
        "case {social_code}/{task_code}/{project_id} is already archived as {archive_id} with other content"
    )]
    Conflict {
        archive_id: String,
        social_code: String,
        task_code: String,
        project_id: String,
    },
    #[error("{0}")]
    Forbidden(String),
    /// The body is over the size limit (HTTP 413).
    #[error("the submission is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The upload broke off (HTTP 400).
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// No byte of the upload arrived for this many seconds (HTTP 408).
    #[error("no byte of the upload arrived for {0} s; the upload was ended")]
    Idle(u64),
    /// Too many uploads are being received (HTTP 503 with Retry-After).
    #[error("{0}")]
    Busy(String),
    /// Not the submission's fault; the cause is kept for the server log.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DbError> for IngestError {
    fn from(e: DbError) -> Self {
        IngestError::Internal(Box::new(e))
    }
}
impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Internal(Box::new(e))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub archive_id: String,
    pub status: crate::db::cases::CaseStatus,
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub year: i64,
    pub package: PackageInfo,
    pub files: Vec<FileRow>,
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub size: i64,
    /// SHA-256 of `tagmanifest-sha256.txt`, which covers every byte of the package through the
    /// manifests; it is also what the transparency log records.
    pub digest: String,
    pub digest_algorithm: &'static str,
    pub signature: serde_json::Value,
}

pub enum Outcome {
    /// A new case was archived (HTTP 201).
    Created(IngestSummary),
    /// The identical submission was already archived (HTTP 200).
    Existing(IngestSummary),
}

impl IngestError {
    /// The HTTP status and `error` word of this outcome (CONTRACT.md §3); also what the audit
    /// trail records for an online submission.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            IngestError::Unreadable(_) => (400, "not_a_zip"),
            IngestError::Rejected(_) => (422, "rejected"),
            IngestError::Conflict { .. } => (409, "case_exists"),
            IngestError::Forbidden(_) => (403, "forbidden"),
            IngestError::TooLarge(_) => (413, "too_large"),
            IngestError::Interrupted(_) => (400, "bad_request"),
            IngestError::Idle(_) => (408, "request_timeout"),
            IngestError::Busy(_) => (503, "busy"),
            IngestError::Internal(e) if crate::db::busy_in(e.as_ref()) => (503, "unavailable"),
            IngestError::Internal(_) => (500, "internal"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `submit` over HTTP, `import` at the command line.
fn trail_action(agent: &Principal) -> &'static str {
    if agent.channel == Channel::Offline {
        "import"
    } else {
        "submit"
    }
}

/// What the audit trail says of a submission that did not create a case (a new case's row is
/// written in the transaction that records it): its target and outcome.
fn trail_outcome(agent: &Principal, r: &Result<Outcome, IngestError>) -> (String, String) {
    let offline = agent.channel == Channel::Offline;
    match r {
        Ok(Outcome::Created(s)) => (s.archive_id.clone(), "archived".into()),
        Ok(Outcome::Existing(s)) if offline => (s.archive_id.clone(), "identical".into()),
        Ok(Outcome::Existing(s)) => (s.archive_id.clone(), "200 identical".into()),
        Err(IngestError::Conflict { archive_id, .. }) if offline => {
            (archive_id.clone(), "case_exists".into())
        }
        Err(_) if offline => ("-".into(), "rejected".into()),
        Err(e) => {
            let (status, code) = e.status_and_code();
            ("-".into(), format!("{status} {code}"))
        }
    }
}

/// The ingest service.
pub struct Ingest {
    settings: Arc<Settings>,
    db: Db,
    store: Store,
    evidence: Evidence,
    keys: Arc<Keys>,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    policy: Arc<BTreeMap<String, Action>>,
    slots: Arc<Semaphore>,
    receiving: Arc<Semaphore>,
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub fn summary(c: &CaseRow, files: Vec<FileRow>, warnings: Vec<Problem>) -> IngestSummary {
    IngestSummary {
        archive_id: c.archive_id.clone(),
        status: c.status,
        social_code: c.social_code.clone(),
        task_code: c.task_code.clone(),
        project_id: c.project_id.clone(),
        year: c.year,
        package: PackageInfo {
            size: c.package_size,
            digest: c.tagmanifest_sha256.clone(),
            digest_algorithm: "SHA-256",
            signature: serde_json::from_str(&c.signature_json).unwrap_or_default(),
        },
        files,
        warnings,
    }
}

fn warnings_from_json(v: serde_json::Value) -> Vec<Problem> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| {
                    Some(Problem {
                        code: Code::parse(w.get("code")?.as_str()?)?,
                        path: w.get("path").and_then(|p| p.as_str()).map(str::to_string),
                        field: w.get("field").and_then(|p| p.as_str()).map(str::to_string),
                        message: w.get("message")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Ingest {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        store: Store,
        evidence: Evidence,
        keys: Arc<Keys>,
        rules: Arc<Rules>,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest {
            policy: Arc::new(pipeline::identify::policy(&settings.format_policy)),
            slots: Arc::new(Semaphore::new(settings.ingest_concurrency)),
            receiving: Arc::new(Semaphore::new(settings.limits.max_receiving)),
            key_locks: Mutex::new(HashMap::new()),
            settings,
            db,
            store,
            evidence,
            keys,
            rules,
            metrics,
        }
    }

    /// Removes packages whose ingest stopped between storing and recording, and staging files.
    pub async fn recover(&self) -> Result<usize, RecoverError> {
        let grace = self.settings.recovery_grace_secs;
        let before = chrono::Utc::now().timestamp() - grace as i64;
        let mut n = 0;
        for (archive_id, key) in self.db.stale_intents(before).await? {
            self.store.delete(&key).await?;
            self.db.delete_intent(&archive_id).await?;
            tracing::warn!(
                archive_id,
                key,
                "removed a package left by an interrupted ingest"
            );
            n += 1;
        }
        crate::staging::sweep_and_log(&self.settings.staging_root(), Duration::from_secs(grace));
        Ok(n)
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, v| Arc::strong_count(v) > 1);
        }
        m.entry(key.to_string()).or_default().clone()
    }

    /// Archives one submission on disk (offline import).
    pub async fn ingest(&self, source: Source, agent: Principal) -> Result<Outcome, IngestError> {
        self.observed(&agent, async {
            let _slot = self.slot().await?;
            let archive_id = uuid::Uuid::now_v7().to_string();
            let received_at = chrono::Utc::now().fixed_offset();
            self.ingest_inner(source, &agent, archive_id, received_at, None)
                .await
        })
        .await
    }

    /// Archives one submission arriving as a byte stream (online). The body is spooled and, in
    /// the same pass, unpacked, digested and packaged as it arrives; then it goes through the
    /// same checks as [`Archive::ingest`].
    pub async fn ingest_body<S, E>(&self, body: S, agent: Principal) -> Result<Outcome, IngestError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // Receiving takes a receive permit, not a processing slot: a slow or silent client
        // holds a spool file and a descriptor until the idle timeout, never a slot.
        let receiving = self.receiving.clone().try_acquire_owned().map_err(|_| {
            IngestError::Busy(format!(
                "{} uploads are being received; try again shortly",
                self.settings.limits.max_receiving
            ))
        });
        self.observed(&agent, async {
            let _receiving = receiving?;
            let archive_id = uuid::Uuid::now_v7().to_string();
            let received_at = chrono::Utc::now().fixed_offset();
            let dir = self.settings.tmp_dir();
            let early = EarlyInput {
                pkg_path: dir.join(format!("{archive_id}.aip.zip")),
                archive_id: archive_id.clone(),
                received_at,
                limits: self.settings.limits.clone(),
            };
            let limits = &self.settings.limits;
            let (spooled, early) = spool(
                body,
                limits.max_body_bytes,
                Duration::from_secs(limits.receive_idle_secs),
                &dir,
                Some(early),
            )
            .await
            .map_err(|e| match e {
                ReceiveError::TooLarge(l) => IngestError::TooLarge(l),
                ReceiveError::Interrupted(m) => IngestError::Interrupted(m),
                ReceiveError::Idle(s) => IngestError::Idle(s),
                ReceiveError::Io(e) => IngestError::Internal(Box::new(e)),
            })?;
            drop(_receiving);
            let _slot = self.slot().await?;
            crate::failpoint::pause("hold_slot").await;
            tracing::debug!(
                bytes = spooled.size,
                ms = (chrono::Utc::now().fixed_offset() - received_at).num_milliseconds(),
                unpacked_while_receiving = early.is_some(),
                "received"
            );
            let source = Source::Zip(spooled.path.to_path_buf());
            let r = self
                .ingest_inner(source, &agent, archive_id, received_at, early)
                .await;
            drop(spooled);
            r
        })
        .await
    }

    /// A processing slot: at most `ingest_concurrency` submissions are checked and packaged at once.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| IngestError::Internal(Box::new(e)))
    }

    /// Whether a submission sent now would be received and processed without waiting: a
    /// receive permit and a processing slot are free (`Expect: 100-continue` is answered by it).
    pub fn has_free_slot(&self) -> bool {
        self.slots.available_permits() > 0 && self.receiving.available_permits() > 0
    }

    /// Metrics and one log line around an ingest.
    async fn observed(
        &self,
        agent: &Principal,
        work: impl std::future::Future<Output = Result<Outcome, IngestError>>,
    ) -> Result<Outcome, IngestError> {
        self.metrics
            .ingests_in_flight
            .fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let r = work.await;
        self.metrics
            .ingests_in_flight
            .fetch_sub(1, Ordering::Relaxed);
        match &r {
            Ok(Outcome::Created(s)) => {
                self.metrics.cases_archived.fetch_add(1, Ordering::Relaxed);
                let bytes: i64 = s.files.iter().map(|f| f.size).sum();
                self.metrics
                    .bytes_archived
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                self.metrics
                    .ingest_seconds_sum_ms
                    .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                tracing::info!(archive_id = %s.archive_id, files = s.files.len(), bytes, channel = agent.channel.as_str(), "case archived");
            }
            Ok(Outcome::Existing(s)) => {
                self.metrics.cases_duplicate.fetch_add(1, Ordering::Relaxed);
                tracing::info!(archive_id = %s.archive_id, "identical submission: existing case returned");
            }
            Err(IngestError::Rejected(p)) => {
                self.metrics
                    .submissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(k) = &p.case_key {
                    let codes: Vec<&str> = p.errors.iter().map(|e| e.code.as_str()).collect();
                    if let Err(e) = self.db.record_rejection(k, &codes.join(",")).await {
                        tracing::error!(error = %e, "cannot record a rejection");
                    }
                }
                for e in &p.errors {
                    self.metrics.problem(e.code.as_str());
                }
                let codes: Vec<&str> = p.errors.iter().map(|e| e.code.as_str()).collect();
                tracing::info!(problems = ?codes, channel = agent.channel.as_str(), "submission rejected");
            }
            Err(IngestError::Conflict { archive_id, .. }) => {
                self.metrics.cases_conflict.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%archive_id, "case exists with other content");
            }
            Err(IngestError::Unreadable(_)) => {
                self.metrics
                    .submissions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics.problem("not_a_zip");
                // The reason can quote an entry name, which may carry personal data: not logged.
                tracing::info!("unreadable submission (not a ZIP, truncated or damaged)");
            }
            Err(e) => tracing::error!(error = %e, "ingest failed"),
        }
        if !matches!(r, Ok(Outcome::Created(_))) {
            let (target, outcome) = trail_outcome(agent, &r);
            self.evidence
                .audit(agent, trail_action(agent), &target, &outcome)
                .await;
        }
        r
    }

    async fn ingest_inner(
        &self,
        source: Source,
        agent: &Principal,
        archive_id: String,
        received_at: chrono::DateTime<chrono::FixedOffset>,
        early: Option<Early>,
    ) -> Result<Outcome, IngestError> {
        let settings = self.settings.clone();
        let policy = self.policy.clone();
        let signer = self.keys.signer();
        let sm2 = self.keys.sm2().filter(|_| self.settings.sm2.sign_packages);
        let rules = self.rules.current().await?;
        let agent_c = agent.clone();
        let id_c = archive_id.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            pipeline::prepare(PrepareInput {
                source: &source,
                settings: &settings,
                policy: &policy,
                signer: &signer,
                sm2: sm2.as_deref(),
                archive_id: &id_c,
                agent: &agent_c,
                received_at,
                rules: &rules,
                early,
            })
        })
        .await
        .map_err(|e| IngestError::Internal(Box::new(e)))?;
        tracing::debug!(
            ms = (chrono::Utc::now().fixed_offset() - received_at).num_milliseconds(),
            "prepared"
        );
        let prepared = match prepared {
            Ok(p) => p,
            Err(PrepareError::Unreadable(m)) => return Err(IngestError::Unreadable(m)),
            Err(PrepareError::Rejected(p)) => return Err(IngestError::Rejected(p)),
            Err(PrepareError::Io(e)) => return Err(IngestError::Internal(Box::new(e))),
        };
        if prepared.streamed {
            self.metrics
                .ingests_streamed
                .fetch_add(1, Ordering::Relaxed);
        }
        let m = &prepared.metadata;
        if agent.role == Role::Submitter && agent.org.as_deref() != Some(m.social_code.as_str()) {
            return Err(IngestError::Forbidden(format!(
                "this token may submit cases of organisation {} only; metadata.xml names {}",
                agent.org.as_deref().unwrap_or("-"),
                m.social_code
            )));
        }
        let case_key = format!(
            "{}\u{1f}{}\u{1f}{}",
            m.social_code, m.task_code, m.project_id
        );
        let lock = self.key_lock(&case_key);
        let _guard = lock.lock().await;
        if let Some(existing) = self
            .db
            .case_by_key(&m.social_code, &m.task_code, &m.project_id)
            .await?
        {
            return self.existing_or_conflict(existing, &prepared).await;
        }
        self.commit(prepared, agent).await
    }

    async fn existing_or_conflict(
        &self,
        existing: CaseRow,
        p: &Prepared,
    ) -> Result<Outcome, IngestError> {
        if existing.content_digest == p.content_digest {
            let files = self.db.case_files(&existing.archive_id).await?;
            let warnings = serde_json::from_str(&existing.warnings_json).unwrap_or_default();
            let warnings: Vec<Problem> = warnings_from_json(warnings);
            return Ok(Outcome::Existing(summary(&existing, files, warnings)));
        }
        Err(IngestError::Conflict {
            archive_id: existing.archive_id,
            social_code: existing.social_code,
            task_code: existing.task_code,
            project_id: existing.project_id,
        })
    }

    /// Store, then record. The intent row makes a crash between the two recoverable.
    async fn commit(&self, p: Prepared, agent: &Principal) -> Result<Outcome, IngestError> {
        let key = package_key(&p.archive_id, 1);
        self.evidence
            .record(Write::Intent {
                archive_id: p.archive_id.clone(),
                object_key: key.clone(),
            })
            .await?;
        if let Err(e) = self.store.commit(&p.staged, &key).await {
            let _ = self.db.delete_intent(&p.archive_id).await;
            return Err(e.into());
        }
        crate::failpoint::failpoint("after_store");
        tracing::debug!(
            ms = (chrono::Utc::now().fixed_offset() - p.received_at).num_milliseconds(),
            "stored"
        );
        let m = &p.metadata;
        let now = crate::db::now_rfc3339();
        let row = CaseRow {
            paper_pages: m.paper_pages.map(i64::from),
            digitised_pages: 0,
            sealed_filing: None,
            transferred_in: None,
            transferred_at: None,
            archive_id: p.archive_id.clone(),
            social_code: m.social_code.clone(),
            task_code: m.task_code.clone(),
            project_id: m.project_id.clone(),
            content_digest: p.content_digest.clone(),
            version: 1,
            status: crate::db::cases::CaseStatus::Archived,
            year: m.year(self.settings.filing.tz()).unwrap_or_default() as i64,
            task_name: m.task_name.clone(),
            task_type: m.task_type.clone(),
            catalog_code: m.catalog_code.clone(),
            project_name: m.project_name.clone(),
            region_code: m.region_code.clone(),
            lead_department: m.lead_department.clone(),
            result: m.result.clone(),
            security_classification: m.security_classification.clone(),
            retention_proposed: m.retention_period.clone(),
            retention: Some(p.retention.retention.as_str().into()),
            archival_code: None,
            receive_time: m.receive_time.clone(),
            transact_time: m.transact_time.clone(),
            source: agent.channel.as_str().to_string(),
            submitted_by: agent.id.clone(),
            package_key: key.clone(),
            package_size: p.package.size as i64,
            tagmanifest_sha256: p.package.tagmanifest_sha256.clone(),
            signature_json: serde_json::to_string(&p.package.signature).unwrap_or_default(),
            key_id: p.package.signature.key_id.clone(),
            metadata_json: serde_json::to_string(m).unwrap_or_default(),
            warnings_json: serde_json::to_string(&p.warnings).unwrap_or_default(),
            archived_at: now.clone(),
            checks_json: serde_json::to_string(&p.checks).unwrap_or_else(|_| "[]".into()),
            retention_rule_version: Some(p.retention.rule_version),
            retention_basis: Some(p.retention.basis.clone()),
            filing_batch: None,
            filed_at: None,
            filing_late: 0,
            filing_problem: None,
            disposed_at: None,
            disposal_list: None,
            file_count: Some(p.files.len() as i64),
            file_bytes: Some(p.files.iter().map(|f| f.size).sum()),
        };
        let t = |d: &chrono::DateTime<chrono::FixedOffset>| {
            d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let events = vec![
            EventRow {
                kind: "received".into(),
                at: t(&p.received_at),
                agent: agent.label(),
                detail: None,
            },
            EventRow {
                kind: "validated".into(),
                at: t(&p.validated_at),
                agent: "guidang".into(),
                detail: Some(format!(
                    "{} files, {} warnings",
                    p.files.len(),
                    p.warnings.len()
                )),
            },
            EventRow {
                kind: "signed".into(),
                at: p.package.signature.signed_at.clone(),
                agent: "guidang".into(),
                detail: Some(format!("Ed25519 key {}", p.package.signature.key_id)),
            },
            EventRow {
                kind: "stored".into(),
                at: now.clone(),
                agent: "guidang".into(),
                detail: Some(key.clone()),
            },
        ];
        let recorded = self
            .evidence
            .record(Write::Case {
                row: Box::new(row.clone()),
                files: p.files.clone(),
                events,
                audit: crate::evidence::trail_event(
                    agent,
                    trail_action(agent),
                    &row.archive_id,
                    if agent.channel == Channel::Offline {
                        "archived"
                    } else {
                        "201 archived"
                    },
                ),
            })
            .await;
        match recorded {
            Ok(()) => Ok(Outcome::Created(summary(
                &row,
                p.files.clone(),
                p.warnings.clone(),
            ))),
            Err(e) => {
                // Another server won the race for this case key, or the database failed: our
                // package is not referenced by any case, so it goes.
                let _ = self.store.delete(&key).await;
                let _ = self.db.delete_intent(&p.archive_id).await;
                if e.is_unique_violation()
                    && let Some(existing) = self
                        .db
                        .case_by_key(&m.social_code, &m.task_code, &m.project_id)
                        .await?
                {
                    return self.existing_or_conflict(existing, &p).await;
                }
                Err(e.into())
            }
        }
    }
}
