//! The archive core: the pipeline plus the database and the object store, with no knowledge of
//! HTTP or the command line. `guidang serve` and `guidang import` both call [`Archive::ingest`],
//! so online and offline archiving apply exactly the same rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::auth::{Caller, Role};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::db::cases::{CaseFilter, CaseRow, EventRow, FileRow};
use crate::db::{Db, DbError};
use crate::evidence::log::Log;
use crate::evidence::recorder::{Recorder, Write};
use crate::metrics::Metrics;
use crate::pipeline::identify::Action;
use crate::pipeline::receive::{ReceiveError, spool};
use crate::pipeline::stream_unpack::{Early, EarlyInput};
use crate::pipeline::unpack::Source;
use crate::pipeline::{self, Agent, PrepareError, PrepareInput, Prepared};
use crate::problem::{Code, Problem, Problems};
use crate::retention::RuleSet;
use crate::signing::{PublicKeyInfo, Signer};
use crate::storage::{Store, StoreError, package_key};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] crate::signing::KeyError),
}

/// Why an ingest did not archive anything.
#[derive(Debug, Clone, thiserror::Error)]
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
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for IngestError {
    fn from(e: DbError) -> Self {
        IngestError::Internal(e.to_string())
    }
}
impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Internal(e.to_string())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub archive_id: String,
    pub status: String,
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

pub struct Archive {
    pub settings: Settings,
    pub db: Db,
    pub store: Store,
    signer: std::sync::RwLock<(Arc<Signer>, Option<std::time::SystemTime>)>,
    pub log: Log,
    pub metrics: Metrics,
    policy: Arc<BTreeMap<String, Action>>,
    recorder: Recorder,
    slots: Arc<Semaphore>,
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The calendar (filing deadlines, disposal dates); the system clock in service.
    pub clock: Arc<dyn Clock>,
    /// This process, as the owner of leases shared with other servers.
    pub instance: String,
    /// The retention rules in force, re-read from the database at most every [`RULES_TTL`].
    rules: std::sync::RwLock<(Arc<RuleSet>, Instant)>,
}

/// How stale the cached retention rules may be on a server that did not change them itself
/// (another server sharing the database did).
const RULES_TTL: Duration = Duration::from_secs(2);

fn summary(c: &CaseRow, files: Vec<FileRow>, warnings: Vec<Problem>) -> IngestSummary {
    IngestSummary {
        archive_id: c.archive_id.clone(),
        status: c.status.clone(),
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

fn mask_name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => format!("{first}{}", "*".repeat(c.count().max(1))),
        None => String::new(),
    }
}

impl Archive {
    /// Opens the data directory, database and object store, loads (or creates) the signing key,
    /// and cleans up after any ingest a crash interrupted.
    pub async fn open(settings: Settings) -> Result<Arc<Archive>, OpenError> {
        Self::open_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Archive::open`] with the calendar taken from `clock` (tests walk through a year).
    pub async fn open_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Archive>, OpenError> {
        for d in [settings.data_dir.clone(), settings.tmp_dir()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| OpenError::DataDir(d.display().to_string(), e))?;
        }
        let db = Db::connect(&settings.database_url(), settings.db_max_connections).await?;
        let store = Store::open(&settings.object_store_url())?;
        let settings_key_path = settings.signing_key_path();
        let signer = Signer::load_or_create(&settings_key_path)?;
        db.publish_key(&signer.info).await?;
        let mut log_signer = Signer::load_or_create(&settings.log_key_path())?;
        log_signer.info.purpose = "log".into();
        db.publish_key(&log_signer.info).await?;
        let log = Log::new(db.clone(), Arc::new(log_signer), settings.log_name.clone());
        log.publish().await?;
        let rules = crate::retention::current(&db).await?;
        let archive = Archive {
            clock,
            instance: uuid::Uuid::now_v7().to_string(),
            rules: std::sync::RwLock::new((Arc::new(rules), Instant::now())),
            recorder: Recorder::start(db.clone(), log.clone()),
            log,
            policy: Arc::new(crate::pipeline::identify::policy(&settings.format_policy)),
            slots: Arc::new(Semaphore::new(settings.ingest_concurrency)),
            settings,
            db,
            store,
            signer: std::sync::RwLock::new((Arc::new(signer), key_mtime(&settings_key_path))),
            metrics: Metrics::default(),
            key_locks: Mutex::new(HashMap::new()),
        };
        archive.recover().await?;
        Ok(Arc::new(archive))
    }

    /// The retention rules in force.
    pub async fn rules(&self) -> Result<Arc<RuleSet>, DbError> {
        if let Ok(g) = self.rules.read()
            && g.1.elapsed() < RULES_TTL
        {
            return Ok(g.0.clone());
        }
        let fresh = Arc::new(crate::retention::current(&self.db).await?);
        if let Ok(mut g) = self.rules.write() {
            *g = (fresh.clone(), Instant::now());
        }
        Ok(fresh)
    }

    /// Stores a new version of the retention rules; it applies to cases archived from now on.
    pub async fn put_rules(
        &self,
        rules: &[crate::retention::Rule],
        by: &str,
    ) -> Result<Arc<RuleSet>, DbError> {
        let set = Arc::new(crate::retention::put(&self.db, rules, by).await?);
        if let Ok(mut g) = self.rules.write() {
            *g = (set.clone(), Instant::now());
        }
        Ok(set)
    }

    /// The active package-signing key. A rotation (`guidang keys rotate`, possibly by another
    /// process) replaces the key file; the next ingest picks the new key up.
    pub fn signer(&self) -> Arc<Signer> {
        let path = self.settings.signing_key_path();
        let now = key_mtime(&path);
        if let Ok(g) = self.signer.read()
            && g.1 == now
        {
            return g.0.clone();
        }
        match Signer::load_or_create(&path) {
            Ok(s) => {
                let s = Arc::new(s);
                if let Ok(mut g) = self.signer.write() {
                    *g = (s.clone(), now);
                }
                s
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the signing key; keeping the loaded one");
                self.signer
                    .read()
                    .map(|g| g.0.clone())
                    .unwrap_or_else(|p| p.into_inner().0.clone())
            }
        }
    }

    /// Starts a new package-signing key. The old key is retired (still published, its packages
    /// still verify), its file kept under `keys/retired/`, and the rotation entered in the log.
    pub async fn rotate_key(&self) -> Result<(PublicKeyInfo, PublicKeyInfo), OpenError> {
        let path = self.settings.signing_key_path();
        let old = self.signer();
        let retired_dir = path
            .parent()
            .map(|p| p.join("retired"))
            .unwrap_or_else(|| "retired".into());
        std::fs::create_dir_all(&retired_dir)
            .map_err(|e| OpenError::DataDir(retired_dir.display().to_string(), e))?;
        let kept = retired_dir.join(format!("signing-{}.ed25519", old.info.key_id));
        std::fs::rename(&path, &kept)
            .map_err(|e| OpenError::DataDir(kept.display().to_string(), e))?;
        let new = Signer::load_or_create(&path)?;
        let now = crate::db::now_rfc3339();
        self.db.publish_key(&new.info).await?;
        self.db.retire_key(&old.info.key_id, &now).await?;
        let entry = format!(
            "guidang-key-rotated-v1\n{}\n{}\n{now}\n",
            old.info.key_id, new.info.key_id
        );
        self.recorder
            .write(Write::LogEvent {
                kind: "key_rotated".into(),
                entry,
            })
            .await?;
        let mut old_info = old.info.clone();
        old_info.retired_at = Some(now);
        let new_info = new.info.clone();
        if let Ok(mut g) = self.signer.write() {
            *g = (Arc::new(new), key_mtime(&path));
        }
        Ok((old_info, new_info))
    }

    /// Appends to the audit trail. A failure to record is logged, not fatal to the action.
    pub async fn audit(&self, actor: &str, role: &str, action: &str, target: &str, outcome: &str) {
        let e = crate::evidence::trail::Event {
            actor: actor.into(),
            role: role.into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
        };
        if let Err(err) = self.recorder.write(Write::Audit(e)).await {
            tracing::error!(error = %err, action, "cannot write the audit trail");
        }
    }

    /// Enters the audit trail's head in the transparency log if it moved since the last time.
    pub async fn log_audit_head(&self, last: &mut Option<String>) -> Result<(), DbError> {
        if let Some((seq, hash)) = crate::evidence::trail::head(&self.db).await?
            && last.as_deref() != Some(hash.as_str())
        {
            self.log_event(
                "audit_head",
                format!("guidang-audit-head-v1\n{seq}\n{hash}\n"),
            )
            .await?;
            *last = Some(hash);
        }
        Ok(())
    }

    /// Checks the database against the log and the log against its published checkpoint; a
    /// finding counts as a failed audit and is logged.
    pub async fn reconcile(&self) -> Result<Vec<String>, DbError> {
        let findings = crate::evidence::log::reconcile(&self.db, &self.log).await?;
        if !findings.is_empty() {
            self.metrics.fixity_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(findings = ?findings, "the database and the transparency log disagree");
        }
        Ok(findings)
    }

    /// Enters an event (that is not a new package) in the transparency log.
    pub async fn log_event(&self, kind: &str, entry: String) -> Result<(), DbError> {
        self.recorder
            .write(Write::LogEvent {
                kind: kind.into(),
                entry,
            })
            .await
    }

    /// Removes packages whose ingest stopped between storing and recording, and staging files.
    pub async fn recover(&self) -> Result<usize, OpenError> {
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
        let staged = pipeline::clean_staging(&self.settings.tmp_dir(), Duration::from_secs(grace))
            .unwrap_or(0);
        if staged > 0 {
            tracing::warn!(
                files = staged,
                "removed staging files left by interrupted ingests"
            );
        }
        Ok(n)
    }

    pub fn staging_dir(&self) -> std::path::PathBuf {
        self.settings.tmp_dir()
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, v| Arc::strong_count(v) > 1);
        }
        m.entry(key.to_string()).or_default().clone()
    }

    /// Archives one submission on disk (offline import).
    pub async fn ingest(&self, source: Source, agent: Agent) -> Result<Outcome, IngestError> {
        self.observed(&agent, async {
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
    pub async fn ingest_body<S, E>(&self, body: S, agent: Agent) -> Result<Outcome, IngestError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.observed(&agent, async {
            let archive_id = uuid::Uuid::now_v7().to_string();
            let received_at = chrono::Utc::now().fixed_offset();
            let dir = self.settings.tmp_dir();
            let early = EarlyInput {
                pkg_path: dir.join(format!("{archive_id}.aip.zip")),
                archive_id: archive_id.clone(),
                received_at,
                limits: self.settings.limits.clone(),
            };
            let (spooled, early) =
                spool(body, self.settings.limits.max_body_bytes, &dir, Some(early))
                    .await
                    .map_err(|e| match e {
                        ReceiveError::TooLarge(l) => IngestError::TooLarge(l),
                        ReceiveError::Interrupted(m) => IngestError::Interrupted(m),
                        ReceiveError::Io(e) => IngestError::Internal(e.to_string()),
                    })?;
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

    /// Bounded concurrency, metrics and one log line around an ingest.
    async fn observed(
        &self,
        agent: &Agent,
        work: impl std::future::Future<Output = Result<Outcome, IngestError>>,
    ) -> Result<Outcome, IngestError> {
        let _permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| IngestError::Internal("shutting down".into()))?;
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
                tracing::info!(archive_id = %s.archive_id, files = s.files.len(), bytes, channel = agent.channel, "case archived");
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
                tracing::info!(problems = ?codes, channel = agent.channel, "submission rejected");
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
        r
    }

    async fn ingest_inner(
        &self,
        source: Source,
        agent: &Agent,
        archive_id: String,
        received_at: chrono::DateTime<chrono::FixedOffset>,
        early: Option<Early>,
    ) -> Result<Outcome, IngestError> {
        let settings = self.settings.clone();
        let policy = self.policy.clone();
        let signer = self.signer();
        let rules = self.rules().await?;
        let agent_c = agent.clone();
        let id_c = archive_id.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            pipeline::prepare(PrepareInput {
                source: &source,
                settings: &settings,
                policy: &policy,
                signer: &signer,
                archive_id: &id_c,
                agent: &agent_c,
                received_at,
                rules: &rules,
                early,
            })
        })
        .await
        .map_err(|e| IngestError::Internal(format!("ingest task failed: {e}")))?;
        tracing::debug!(
            ms = (chrono::Utc::now().fixed_offset() - received_at).num_milliseconds(),
            "prepared"
        );
        let prepared = match prepared {
            Ok(p) => p,
            Err(PrepareError::Unreadable(m)) => return Err(IngestError::Unreadable(m)),
            Err(PrepareError::Rejected(p)) => return Err(IngestError::Rejected(p)),
            Err(PrepareError::Io(e)) => return Err(IngestError::Internal(e.to_string())),
        };
        if prepared.streamed {
            self.metrics
                .ingests_streamed
                .fetch_add(1, Ordering::Relaxed);
        }
        let m = &prepared.metadata;
        if agent.role == "submitter" && agent.org.as_deref() != Some(m.social_code.as_str()) {
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
    async fn commit(&self, p: Prepared, agent: &Agent) -> Result<Outcome, IngestError> {
        let key = package_key(&p.archive_id, 1);
        self.recorder
            .write(Write::Intent {
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
            archive_id: p.archive_id.clone(),
            social_code: m.social_code.clone(),
            task_code: m.task_code.clone(),
            project_id: m.project_id.clone(),
            content_digest: p.content_digest.clone(),
            version: 1,
            status: "archived".into(),
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
            source: agent.channel.to_string(),
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
            .recorder
            .write(Write::Case {
                row: Box::new(row.clone()),
                files: p.files.clone(),
                events,
                audit: crate::evidence::trail::Event {
                    actor: agent.id.clone(),
                    role: agent.role.clone(),
                    action: if agent.channel == "offline" {
                        "import"
                    } else {
                        "submit"
                    }
                    .into(),
                    target: row.archive_id.clone(),
                    outcome: if agent.channel == "offline" {
                        "archived"
                    } else {
                        "201 archived"
                    }
                    .into(),
                },
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

    /// Whether `caller` may see the case at all (submitters: their organisation only).
    fn visible(caller: &Caller, c: &CaseRow) -> bool {
        caller.role != Role::Submitter || caller.org.as_deref() == Some(c.social_code.as_str())
    }

    pub async fn case_for(
        &self,
        caller: &Caller,
        archive_id: &str,
    ) -> Result<Option<CaseRow>, DbError> {
        Ok(self
            .db
            .case(archive_id)
            .await?
            .filter(|c| Self::visible(caller, c)))
    }

    /// The full description of a case as `caller` may see it.
    pub async fn case_view(
        &self,
        caller: &Caller,
        archive_id: &str,
    ) -> Result<Option<serde_json::Value>, DbError> {
        let Some(c) = self.case_for(caller, archive_id).await? else {
            return Ok(None);
        };
        let files = self.db.case_files(archive_id).await?;
        let mut events = self.db.case_events(archive_id).await?;
        // Filing is recorded on the case row itself (one write per case for a million-case year).
        if let (Some(at), Some(code)) = (&c.filed_at, &c.archival_code) {
            events.push(EventRow {
                kind: "filed".into(),
                at: at.clone(),
                agent: "guidang".into(),
                detail: Some(format!(
                    "{code} in batch {}",
                    c.filing_batch.as_deref().unwrap_or("-")
                )),
            });
            events.sort_by(|a, b| a.at.cmp(&b.at));
        }
        let mut metadata: serde_json::Value =
            serde_json::from_str(&c.metadata_json).unwrap_or_default();
        if !caller.role.sees_personal_data() {
            if let Some(v) = metadata.get_mut("apply_card_no")
                && let Some(s) = v.as_str()
            {
                *v = json!(crate::codes::mask_id(s));
            }
            if let Some(v) = metadata.get_mut("apply_name")
                && let Some(s) = v.as_str()
                && metadata_is_person(&c)
            {
                *v = json!(mask_name(s));
            }
        }
        let licenses = metadata.get("licenses").cloned().unwrap_or(json!([]));
        let warnings: serde_json::Value =
            serde_json::from_str(&c.warnings_json).unwrap_or(json!([]));
        let sum = summary(&c, files, vec![]);
        Ok(Some(json!({
            "archive_id": c.archive_id,
            "status": c.status,
            "version": c.version,
            "social_code": c.social_code,
            "task_code": c.task_code,
            "project_id": c.project_id,
            "project_name": c.project_name,
            "task_name": c.task_name,
            "task_type": c.task_type,
            "year": c.year,
            "result": c.result,
            "security_classification": c.security_classification,
            "retention": c.retention,
            "retention_proposed": c.retention_proposed,
            "retention_rule_version": c.retention_rule_version,
            "retention_basis": c.retention_basis,
            "archival_code": c.archival_code,
            "filing": {
                "batch_id": c.filing_batch,
                "filed_at": c.filed_at,
                "late": c.filing_late != 0,
                "problem": c.filing_problem,
            },
            "disposal": {
                "list_id": c.disposal_list,
                "disposed_at": c.disposed_at,
            },
            "holds": crate::disposal::holds_of(&self.db, &c.archive_id).await?,
            "channel": c.source,
            "archived_at": c.archived_at,
            "metadata": metadata,
            "files": sum.files,
            "licenses": licenses,
            "package": sum.package,
            "warnings": warnings,
            "events": events,
            "checks": serde_json::from_str::<serde_json::Value>(&c.checks_json).unwrap_or(json!([])),
        })))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        mut f: CaseFilter,
    ) -> Result<serde_json::Value, DbError> {
        if caller.role == Role::Submitter {
            f.org = Some(caller.org.clone().unwrap_or_default());
        }
        let (rows, total) = self.db.list_cases(&f).await?;
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|c| {
                json!({
                    "archive_id": c.archive_id,
                    "social_code": c.social_code,
                    "task_code": c.task_code,
                    "project_id": c.project_id,
                    "project_name": c.project_name,
                    "task_name": c.task_name,
                    "year": c.year,
                    "status": c.status,
                    "result": c.result,
                    "archival_code": c.archival_code,
                    "retention": c.retention,
                    "archived_at": c.archived_at,
                })
            })
            .collect();
        Ok(json!({"items": items, "total": total, "page": f.page, "per_page": f.per_page}))
    }

    /// Published keys; the log key carries its signed-note verifier key.
    /// The four-property check report of a case as `caller` may see it.
    pub async fn checks(
        &self,
        caller: &Caller,
        archive_id: &str,
    ) -> Result<Option<serde_json::Value>, DbError> {
        let Some(c) = self.case_for(caller, archive_id).await? else {
            return Ok(None);
        };
        let items: serde_json::Value = serde_json::from_str(&c.checks_json).unwrap_or(json!([]));
        Ok(Some(json!({
            "archive_id": c.archive_id,
            "standard": "DA/T 70-2018",
            "stages": [{"stage": "GD", "items": items}],
        })))
    }

    pub async fn keys(&self) -> Result<Vec<PublicKeyInfo>, DbError> {
        let mut keys = self.db.keys().await?;
        for k in &mut keys {
            if k.purpose == "log" {
                let pk: Option<[u8; 32]> = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    &k.public_key,
                )
                .ok()
                .and_then(|b| b.try_into().ok());
                k.vkey = pk.map(|pk| crate::evidence::note::vkey(&self.settings.log_name, &pk));
            }
        }
        Ok(keys)
    }
}

fn key_mtime(p: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn metadata_is_person(c: &CaseRow) -> bool {
    serde_json::from_str::<serde_json::Value>(&c.metadata_json)
        .ok()
        .and_then(|m| {
            m.get("apply_type")
                .and_then(|v| v.as_str())
                .map(|s| s == "person")
        })
        .unwrap_or(true)
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
