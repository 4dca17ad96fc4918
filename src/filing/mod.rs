//! The yearly filing (归档, article 40): every case completed in year Y is checked, given its
//! archival code and handed to the filing office by 30 June of Y+1, with a filing register
//! (归档文件目录) and a registration form (归档登记表).
//!
//! A filing batch codes its cases a chunk at a time; each chunk (codes, counters, statuses, batch
//! totals) commits in one transaction, so a crash loses at most the chunk in flight and the next
//! run resumes the same batch with the next item number. Exactly one server files at a time (a
//! lease in the database). Cases of year Y arriving after a batch are filed by a later,
//! supplementary batch and flagged late.

pub mod code_check;
pub mod register;
pub mod schedule;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Datelike;
use futures_util::StreamExt;

use crate::auth::Principal;
use crate::clock::Clock;
use crate::config::{FilingSettings, Retention};
use crate::db::lease::Lease;
use crate::db::{Bind, Db, DbError, bind_all};
use crate::evidence::Evidence;
use crate::evidence::checks::Outcome;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::verify::Status;

/// What the filing service is built from.
pub struct Parts {
    pub db: Db,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub evidence: Evidence,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    pub settings: FilingSettings,
    pub fonds_code: String,
    /// The retention of a case recorded without one (the configured default).
    pub default_retention: Retention,
    pub staging: std::path::PathBuf,
    /// This server, as the owner of the filing lease.
    pub instance: String,
}

/// The yearly filing service.
pub struct Filing {
    db: Db,
    store: Store,
    clock: Arc<dyn Clock>,
    evidence: Evidence,
    keys: Arc<Keys>,
    metrics: Arc<Metrics>,
    settings: FilingSettings,
    fonds_code: String,
    default_retention: Retention,
    staging: std::path::PathBuf,
    instance: String,
}

impl Filing {
    pub fn new(p: Parts) -> Filing {
        Filing {
            db: p.db,
            store: p.store,
            clock: p.clock,
            evidence: p.evidence,
            keys: p.keys,
            metrics: p.metrics,
            settings: p.settings,
            fonds_code: p.fonds_code,
            default_retention: p.default_retention,
            staging: p.staging,
            instance: p.instance,
        }
    }

    pub fn settings(&self) -> &FilingSettings {
        &self.settings
    }

    /// Files year `year`: a new batch, or the one a crash or a lost lease left running.
    pub async fn run(&self, year: i64, origin: &str, by: &Principal) -> Result<Batch, FilingError> {
        run(self, year, origin, by).await
    }

    pub async fn batches(&self, year: i64) -> Result<Vec<Batch>, DbError> {
        batches(self, year).await
    }

    pub async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, DbError> {
        batch(self, batch_id).await
    }

    /// The state of year `year`: counts, deadline, batches, completeness.
    pub async fn status(&self, year: i64) -> Result<status::FilingStatus, DbError> {
        status::status(self, year).await
    }

    pub async fn counts(&self, year: i64) -> Result<status::Counts, DbError> {
        status::counts(self, year).await
    }

    /// Declares the cases an organisation expects to have archived in `year`.
    pub async fn put_expected(
        &self,
        year: i64,
        org: &str,
        expected: &status::Expected,
        by: &Principal,
    ) -> Result<(usize, usize), DbError> {
        let (keys, counts) = status::put_expected(self, year, org, expected).await?;
        self.evidence
            .audit(
                by,
                "declare_expected",
                &format!("{year} {org}"),
                &format!("{keys} cases, {counts} counts"),
            )
            .await;
        Ok((keys, counts))
    }

    /// A document of a filing batch (register, form), entered in the audit trail. `None` when
    /// the batch exists but has no such document (yet).
    pub async fn document(
        &self,
        year: i64,
        batch_id: &str,
        name: &str,
        by: &Principal,
    ) -> Result<Option<crate::documents::Opened>, FilingError> {
        let b = batch(self, batch_id)
            .await?
            .filter(|b| b.year == year)
            .ok_or(FilingError::NoBatch)?;
        self.evidence
            .audit(
                by,
                "read_filing_document",
                batch_id,
                &crate::documents::trail_name(name),
            )
            .await;
        let Some(doc) = crate::documents::find(b.documents.as_ref(), name) else {
            return Ok(None);
        };
        Ok(Some(
            crate::documents::Opened::open(&self.store, doc).await?,
        ))
    }

    /// One look at the calendar: the notices due now, and the scheduled filing if its day came.
    pub async fn tick(&self) -> Result<Vec<schedule::Notice>, FilingError> {
        schedule::tick(self).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilingError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("filing: {0}")]
    Io(#[from] std::io::Error),
    #[error("filing: {0}")]
    Store(#[from] crate::storage::StoreError),
    #[error("filing: {0}")]
    Document(#[from] crate::documents::DocumentError),
    /// A state the filing's own bookkeeping should never reach (a batch row gone mid-run).
    #[error("filing: {0}")]
    Inconsistent(String),
    #[error("no such filing batch")]
    NoBatch,
    #[error("a filing is already running (held by {0}); try again when it has finished")]
    Busy(String),
    #[error("year {0} has no archived case waiting to be filed")]
    Nothing(i64),
    #[error("year {0} is not over yet in the filing time zone; it can be filed from 1 January {next}", next = .0 + 1)]
    NotYet(i64),
    #[error("the filing lost its lease to another server and stopped; run it again")]
    LeaseLost,
}

impl From<sqlx::Error> for FilingError {
    fn from(e: sqlx::Error) -> Self {
        FilingError::Db(e.into())
    }
}

pub use crate::db::filing::Batch;

async fn batches(filing: &Filing, year: i64) -> Result<Vec<Batch>, DbError> {
    filing.db.batches(year).await
}

async fn batch(filing: &Filing, batch_id: &str) -> Result<Option<Batch>, DbError> {
    filing.db.batch(batch_id).await
}

use crate::db::filing::Queued;

/// Files year `year`: resumes its unfinished batch, or starts the next one. `Err(Nothing)` when
/// every archived case of the year is filed already.
async fn run(
    filing: &Filing,
    year: i64,
    origin: &str,
    actor: &Principal,
) -> Result<Batch, FilingError> {
    let tz = filing.settings.tz();
    if filing.clock.now().with_timezone(&tz).year() as i64 <= year {
        return Err(FilingError::NotYet(year));
    }
    let lease = match Lease::acquire(
        &filing.db,
        "filing",
        &filing.instance,
        filing.settings.lease_secs,
    )
    .await?
    {
        Ok(l) => l,
        Err(holder) => return Err(FilingError::Busy(holder)),
    };
    let r = run_leased(filing, year, origin, actor, &lease).await;
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "cannot release the filing lease; it expires by itself");
    }
    r
}

async fn run_leased(
    filing: &Filing,
    year: i64,
    origin: &str,
    actor: &Principal,
    lease: &Lease,
) -> Result<Batch, FilingError> {
    let db = &filing.db;
    let running = batches(filing, year)
        .await?
        .into_iter()
        .find(|b| b.state == "running");
    let batch = match running {
        Some(b) => {
            tracing::warn!(batch_id = %b.batch_id, year, cases = b.cases, "resuming an interrupted filing batch");
            b
        }
        None => start_batch(filing, year, origin, actor).await?,
    };
    let settings = &filing.settings;
    let pattern = &settings.code_pattern;
    let keys = Arc::new(filing.keys.published().await?);
    let deadline = schedule::deadline(year, settings.tz());
    let late = batch.kind == "supplementary" || filing.clock.now() >= deadline;
    let full = settings.check == crate::config::CheckDepth::Full;
    tracing::info!(batch_id = %batch.batch_id, year, kind = %batch.kind, "filing");
    // The next chunk is checked while the previous one is recorded; chunks are read in
    // completion order from a cursor, so item numbers follow that order.
    let mut cursor: (String, String) = (String::new(), String::new());
    let mut previous: Option<Vec<(Queued, Result<(), String>)>> = None;
    loop {
        if !lease.renew().await? {
            return Err(FilingError::LeaseLost);
        }
        let rows = db
            .filing_queue(year, &batch.batch_id, &cursor, settings.batch_size as i64)
            .await?;
        if let Some(last) = rows.last() {
            cursor = (last.transact_time.clone(), last.archive_id.clone());
        }
        let t0 = std::time::Instant::now();
        let check = futures_util::stream::iter(rows)
            .map(|c| {
                let keys = &keys;
                async move {
                    let r = check_case(filing, &c, keys, full).await;
                    (c, r)
                }
            })
            .buffered(settings.check_concurrency)
            .collect::<Vec<_>>();
        let record = async {
            match previous.take() {
                Some(p) => record_chunk(filing, &batch, pattern, p, late)
                    .await
                    .map(|_| true),
                None => Ok(false),
            }
        };
        let (checked, recorded) = tokio::join!(check, record);
        if recorded? {
            crate::failpoint::failpoint("filing_chunk");
        }
        tracing::debug!(
            ms = t0.elapsed().as_millis() as u64,
            cases = checked.len(),
            "filing chunk"
        );
        if checked.is_empty() {
            break;
        }
        previous = Some(checked);
    }
    finish(filing, &batch.batch_id, actor).await
}

async fn start_batch(
    filing: &Filing,
    year: i64,
    origin: &str,
    actor: &Principal,
) -> Result<Batch, FilingError> {
    if !filing.db.has_unfiled(year).await? {
        return Err(FilingError::Nothing(year));
    }
    let started_at = crate::db::rfc3339(&filing.clock.now());
    let batch_id = filing
        .db
        .start_batch(year, origin, &actor.id, &started_at)
        .await?;
    batch(filing, &batch_id)
        .await?
        .ok_or_else(|| FilingError::Inconsistent("the new batch vanished".into()))
}

/// The filing check (DA/T 70, archiving stage, as far as it can be repeated at filing): the
/// archiving-stage checks recorded at ingest found nothing failing, the stored package is there
/// with its recorded size, its tag manifest is the one recorded, and its signature verifies under
/// a published key; with `check = "full"` every payload byte is re-hashed as well.
async fn check_case(
    filing: &Filing,
    c: &Queued,
    keys: &Arc<Vec<crate::signing::PublicKeyInfo>>,
    full: bool,
) -> Result<(), String> {
    if let Some(report) = &c.failed_checks {
        let items: Vec<crate::evidence::checks::CheckItem> =
            serde_json::from_str(report).unwrap_or_default();
        let bad = items.iter().find(|i| i.result == Outcome::Fail);
        return Err(match bad {
            Some(b) => format!("{} failed at archiving: {}", b.code, b.detail),
            None => "the archiving-stage check report records a failure".into(),
        });
    }
    if c.version > 1 {
        // Every earlier version too, each a bag of its own, each signing the one before it.
        let versions = filing
            .db
            .versions(&c.archive_id)
            .await
            .map_err(|e| format!("the package versions cannot be read: {e}"))?;
        let mut before: Option<String> = None;
        for v in &versions {
            let r = check_package(
                filing,
                &v.package_key,
                v.package_size,
                &v.tagmanifest_sha256,
                keys,
                full,
            )
            .await
            .map_err(|e| format!("version {}: {e}", v.version))?;
            if r.previous.map(|p| p.1) != before {
                return Err(format!(
                    "version {} does not extend the version before it",
                    v.version
                ));
            }
            before = Some(v.tagmanifest_sha256.clone());
        }
        if before.as_deref() != Some(c.tagmanifest_sha256.as_str()) {
            return Err("the newest package version is not the one recorded".into());
        }
        return Ok(());
    }
    check_package(
        filing,
        &c.package_key,
        c.package_size,
        &c.tagmanifest_sha256,
        keys,
        full,
    )
    .await
    .map(|_| ())
}

/// Checks one stored package: its recorded size, its seal (and with `full` every payload byte)
/// and that its tag manifest is the one recorded.
async fn check_package(
    filing: &Filing,
    key: &str,
    package_size: i64,
    tagmanifest_sha256: &str,
    keys: &Arc<Vec<crate::signing::PublicKeyInfo>>,
    full: bool,
) -> Result<crate::verify::Report, String> {
    let name = key.to_string();
    let recorded = package_size as u64;
    let size_mismatch =
        move |size: u64| format!("the stored package is {size} bytes, {recorded} were recorded");
    let report = if let Some(path) = filing.store.local_path(key) {
        let keys = keys.clone();
        tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&path)
                .map_err(|e| format!("the stored package cannot be read: {e}"))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size != recorded {
                return Err(size_mismatch(size));
            }
            let r = std::io::BufReader::with_capacity(64 << 10, f);
            Ok(crate::verify::verify_reader_depth(
                &name,
                Box::new(r),
                Some(&keys),
                None,
                full,
            ))
        })
        .await
        .map_err(|e| format!("the check stopped: {e}"))??
    } else {
        let size = filing
            .store
            .size(key)
            .await
            .map_err(|e| format!("the stored package cannot be read: {e}"))?;
        if size != recorded {
            return Err(size_mismatch(size));
        }
        let reader = filing
            .store
            .reader(key, size, tokio::runtime::Handle::current());
        let keys = keys.clone();
        tokio::task::spawn_blocking(move || {
            crate::verify::verify_reader_depth(&name, Box::new(reader), Some(&keys), None, full)
        })
        .await
        .map_err(|e| format!("the check stopped: {e}"))?
    };
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|k| k.status == Status::Fail)
        .map(|k| format!("{}: {}", k.check, k.detail))
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    if report.tagmanifest_sha256.as_deref() != Some(tagmanifest_sha256) {
        return Err("the stored package's tag manifest is not the one recorded".into());
    }
    Ok(report)
}

/// Rows a multi-row statement carries: sqlx binds SQLite parameters in time that grows faster
/// than their number, so statements stay small; PostgreSQL gains little from larger ones.
const ROWS_PER_STATEMENT: usize = 100;

/// Codes, files and counts one chunk in one transaction. Its SQL stays here (not in `db/`): the
/// counters read, the codes they give, the cases updated (and the check that none changed
/// underneath) and the batch totals are one invariant, written as dependent statements of one
/// transaction.
async fn record_chunk(
    filing: &Filing,
    batch: &Batch,
    pattern: &crate::config::CodePattern,
    checked: Vec<(Queued, Result<(), String>)>,
    late: bool,
) -> Result<(), FilingError> {
    let db = &filing.db;
    let settings = &filing.settings;
    // Counted at ingest; a row without the counts (none should remain after migration 0006)
    // is counted here, by its own index lookup.
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    for (c, _) in &checked {
        let n = match (c.file_count, c.file_bytes) {
            (Some(n), Some(b)) => (n, b),
            _ => db.counted_files(&c.archive_id).await?,
        };
        counts.insert(c.archive_id.clone(), n);
    }
    let filed_at = crate::db::rfc3339(&filing.clock.now());
    let mut tx = db.begin_write().await?;
    let mut counters: HashMap<String, i64> = HashMap::new();
    // (filing id, archival code, files, bytes)
    let mut coded: Vec<(&str, String, i64, i64)> = vec![];
    let (mut online, mut offline, mut refused) = (0i64, 0i64, 0i64);
    for (c, verdict) in &checked {
        if let Err(why) = verdict {
            sqlx::query("UPDATE cases SET filing_problem = $1, filing_problem_batch = $2 WHERE archive_id = $3")
                .bind(why)
                .bind(&batch.batch_id)
                .bind(&c.archive_id)
                .execute(&mut *tx)
                .await?;
            refused += 1;
            tracing::warn!(archive_id = %c.archive_id, problem = %why, "the filing check refused a case");
            continue;
        }
        let org = settings
            .org_codes
            .get(&c.social_code)
            .map(String::as_str)
            .unwrap_or(&c.social_code);
        let v = crate::config::CodeValues {
            fonds: &filing.fonds_code,
            category: &settings.category,
            year: batch.year,
            retention: c
                .retention
                .as_deref()
                .unwrap_or(filing.default_retention.as_str()),
            org,
            task_type: &c.task_type,
        };
        let class = pattern.class(&v);
        let last = match counters.get(&class) {
            Some(n) => *n,
            None => sqlx::query_scalar::<_, i64>(
                "SELECT last_item FROM archival_counters WHERE class = $1",
            )
            .bind(&class)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0),
        };
        counters.insert(class, last + 1);
        let (n, b) = counts.get(&c.archive_id).copied().unwrap_or((0, 0));
        coded.push((&c.archive_id, pattern.code(&v, last + 1), n, b));
        if c.source == "offline" {
            offline += 1;
        } else {
            online += 1;
        }
    }
    for part in coded.chunks(ROWS_PER_STATEMENT) {
        // One statement for many cases; `$4 + 3k` is the k-th case's id in every CASE and the IN.
        let mut binds = vec![
            Bind::S(batch.batch_id.clone()),
            Bind::S(filed_at.clone()),
            Bind::I(late as i64),
        ];
        let (mut code_when, mut count_when, mut bytes_when, mut ids) =
            (vec![], vec![], vec![], vec![]);
        for (id, code, n, b) in part {
            let k = binds.len() + 1;
            binds.extend([
                Bind::S(id.to_string()),
                Bind::S(code.clone()),
                Bind::I(*n),
                Bind::I(*b),
            ]);
            code_when.push(format!("WHEN ${k} THEN ${}", k + 1));
            count_when.push(format!("WHEN ${k} THEN ${}", k + 2));
            bytes_when.push(format!("WHEN ${k} THEN ${}", k + 3));
            ids.push(format!("${k}"));
        }
        let sql = format!(
            "UPDATE cases SET status = 'filed', filing_batch = $1, filed_at = $2, filing_late = $3, \
             filing_problem = NULL, filing_problem_batch = NULL, \
             archival_code = CASE archive_id {} END, file_count = CASE archive_id {} END, \
             file_bytes = CASE archive_id {} END WHERE status = 'archived' AND archive_id IN ({})",
            code_when.join(" "),
            count_when.join(" "),
            bytes_when.join(" "),
            ids.join(", ")
        );
        let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done != part.len() as u64 {
            // Only the lease holder files, so this means someone changed cases underneath: stop,
            // and the transaction (codes and counters with it) rolls back.
            return Err(FilingError::Inconsistent(format!(
                "{} of {} cases changed while they were being filed; the chunk was not recorded",
                part.len() as u64 - done,
                part.len()
            )));
        }
    }
    for (class, last) in &counters {
        sqlx::query("INSERT INTO archival_counters (class, last_item) VALUES ($1, $2) ON CONFLICT (class) DO UPDATE SET last_item = excluded.last_item")
            .bind(class)
            .bind(last)
            .execute(&mut *tx)
            .await?;
    }
    let cases = coded.len() as i64;
    let files: i64 = coded.iter().map(|c| c.2).sum();
    let bytes: i64 = coded.iter().map(|c| c.3).sum();
    sqlx::query(
        "UPDATE filing_batches SET cases = cases + $1, files = files + $2, bytes = bytes + $3, online = online + $4, \
         offline = offline + $5, late = late + $6, refused = refused + $7 WHERE batch_id = $8",
    )
    .bind(cases)
    .bind(files)
    .bind(bytes)
    .bind(online)
    .bind(offline)
    .bind(if late { cases } else { 0 })
    .bind(refused)
    .bind(&batch.batch_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    filing
        .metrics
        .cases_filed
        .fetch_add(cases as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Writes the register and the registration form, then closes the batch and enters it in the
/// transparency log, in one transaction.
async fn finish(filing: &Filing, batch_id: &str, actor: &Principal) -> Result<Batch, FilingError> {
    let b = batch(filing, batch_id)
        .await?
        .ok_or_else(|| FilingError::Inconsistent("the batch vanished".into()))?;
    let docs = register::write_filing(filing, &b).await?;
    let form_sha = docs
        .iter()
        .find(|d| d.name == "form.xml")
        .map(|d| d.sha256.clone())
        .unwrap_or_default();
    let finished_at = crate::db::rfc3339(&filing.clock.now());
    let docs_json =
        serde_json::to_string(&docs).map_err(|e| FilingError::Inconsistent(e.to_string()))?;
    let mut tx = filing.db.begin_write().await?;
    sqlx::query("UPDATE filing_batches SET state = 'complete', finished_at = $1, documents_json = $2 WHERE batch_id = $3 AND state = 'running'")
        .bind(&finished_at)
        .bind(&docs_json)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    let entry = format!(
        "guidang-filed-v1\n{}\n{batch_id}\n{}\n{form_sha}\n",
        b.year, b.cases
    );
    filing
        .evidence
        .log_on(&mut tx, "filed", None, &entry)
        .await?;
    let outcome = format!("{} filed, {} refused", b.cases, b.refused);
    filing
        .evidence
        .trail_on(
            &mut tx,
            &crate::evidence::trail_event(actor, "file", batch_id, &outcome),
        )
        .await?;
    tx.commit().await?;
    filing.evidence.committed();
    tracing::info!(
        batch_id,
        year = b.year,
        cases = b.cases,
        refused = b.refused,
        "filing batch complete"
    );
    batch(filing, batch_id)
        .await?
        .ok_or_else(|| FilingError::Inconsistent("the batch vanished".into()))
}
