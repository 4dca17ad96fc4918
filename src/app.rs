//! Wiring: opens the shared parts (data directory, database, object store, keys, evidence, the
//! task supervisor) and builds each capability service from the parts it needs. [`App`] holds
//! them and hands each out; it has no behaviour of its own beyond start-up and shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::cases::Cases;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::db::{Db, DbError};
use crate::digitised::Digitised;
use crate::disposal::Disposal;
use crate::evidence::Evidence;
use crate::evidence::log::Log;
use crate::filing::Filing;
use crate::fixity::Fixity;
use crate::ingest::{Ingest, RecoverError};
use crate::keys::{Keys, KeysError};
use crate::metrics::Metrics;
use crate::retention::Rules;
use crate::signing::Signer;
use crate::staging::Staging;
use crate::storage::{Store, StoreError};
use crate::tasks::{Leased, Tasks};
use crate::tokens::Tokens;
use crate::transfer::Transfers;
use crate::versions::Versions;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, #[source] std::io::Error),
    #[error(
        "no archive here: {key} does not exist. Point GUIDANG_DATA_DIR (or data_dir in the file \
         given to --config) at the archive's data directory, or start a new archive with `guidang init`"
    )]
    NotAnArchive { key: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] crate::signing::KeyError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
}

/// Whether opening may start a new archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Existing,
    CreateIfMissing,
}

pub struct App {
    settings: Arc<Settings>,
    db: Db,
    store: Store,
    tasks: Tasks,
    evidence: Evidence,
    metrics: Arc<Metrics>,
    instance: String,
    /// Held for the process's life: its lock tells sweeps this staging directory is in use.
    _staging: Staging,
    tokens: Tokens,
    keys: Arc<Keys>,
    rules: Arc<Rules>,
    ingest: Ingest,
    cases: Cases,
    filing: Arc<Filing>,
    disposal: Disposal,
    fixity: Arc<Fixity>,
    versions: Versions,
    digitised: Digitised,
    transfers: Transfers,
}

impl App {
    /// Opens an existing archive on the system clock and cleans up after any ingest a crash
    /// interrupted. A data directory without a signing key is not an archive: refused, so that a
    /// command run in the wrong directory does not invent one with keys that belong to no server.
    pub async fn open(settings: Settings) -> Result<Arc<App>, OpenError> {
        Self::open_with_clock(settings, Arc::new(SystemClock), Opening::Existing).await
    }

    /// Opens the archive, creating the data directory, database and keys if this is a new one
    /// (`serve` and `init`).
    pub async fn create(settings: Settings) -> Result<Arc<App>, OpenError> {
        Self::open_with_clock(settings, Arc::new(SystemClock), Opening::CreateIfMissing).await
    }

    /// [`App::open`] with the calendar taken from `clock` (tests walk through a year).
    pub async fn open_with_clock(
        mut settings: Settings,
        clock: Arc<dyn Clock>,
        opening: Opening,
    ) -> Result<Arc<App>, OpenError> {
        let key = settings.signing_key_path();
        if opening == Opening::Existing && !key.exists() {
            return Err(OpenError::NotAnArchive {
                key: crate::config::absolute(&key).display().to_string(),
            });
        }
        for d in [settings.data_dir.clone(), settings.staging_root()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| OpenError::DataDir(d.display().to_string(), e))?;
        }
        let instance = uuid::Uuid::now_v7().to_string();
        let staging = Staging::claim(&settings.staging_root(), &instance)
            .map_err(|e| OpenError::DataDir(settings.staging_root().display().to_string(), e))?;
        settings.staging_dir = Some(staging.dir().to_path_buf());
        let settings = Arc::new(settings);
        let db = Db::connect(
            &settings.database_url(),
            settings.db_max_connections,
            settings.db_lock_wait_ms,
        )
        .await?;
        let store = Store::open(&settings.object_store_url())?;
        let tasks = Tasks::default();
        let metrics = Arc::new(Metrics::default());

        let mut log_signer = Signer::load_or_create(&settings.log_key_path())?;
        log_signer.info.purpose = "log".into();
        db.publish_key(&log_signer.info).await?;
        let log = Log::new(db.clone(), Arc::new(log_signer), settings.log_name.clone());
        log.publish().await?;
        let evidence = Evidence::start(db.clone(), log, &tasks);

        let keys = Arc::new(
            Keys::open(
                db.clone(),
                evidence.clone(),
                settings.signing_key_path(),
                settings.sm2_key_path(),
                settings.log_name.clone(),
            )
            .await?,
        );
        let rules =
            Arc::new(Rules::open(db.clone(), evidence.clone(), settings.retention.clone()).await?);
        let ingest = Ingest::new(
            settings.clone(),
            db.clone(),
            store.clone(),
            evidence.clone(),
            keys.clone(),
            rules.clone(),
            metrics.clone(),
        );
        let fixity = Arc::new(Fixity::new(
            db.clone(),
            store.clone(),
            evidence.clone(),
            keys.clone(),
            metrics.clone(),
        ));
        let filing = Arc::new(Filing::new(crate::filing::Parts {
            db: db.clone(),
            store: store.clone(),
            clock: clock.clone(),
            evidence: evidence.clone(),
            keys: keys.clone(),
            metrics: metrics.clone(),
            settings: settings.filing.clone(),
            fonds_code: settings.fonds_code.clone(),
            default_retention: settings.retention.default,
            staging: settings.tmp_dir(),
            instance: instance.clone(),
        }));
        let disposal = Disposal::new(crate::disposal::Parts {
            db: db.clone(),
            store: store.clone(),
            clock,
            evidence: evidence.clone(),
            metrics: metrics.clone(),
            fonds_code: settings.fonds_code.clone(),
            tz: settings.filing.tz(),
            staging: settings.tmp_dir(),
            transfer_keep_years: settings.transfer_keep_years,
        });
        let versions = Versions::new(
            settings.clone(),
            db.clone(),
            store.clone(),
            evidence.clone(),
            keys.clone(),
        );
        let digitised = Digitised::new(versions.clone());
        let transfers = Transfers::new(
            db.clone(),
            evidence.clone(),
            versions.clone(),
            store.clone(),
            keys.clone(),
            metrics.clone(),
            instance.clone(),
        );
        let app = App {
            transfers,
            versions,
            digitised,
            tokens: Tokens::new(db.clone(), evidence.clone()),
            cases: Cases::new(db.clone(), store.clone(), evidence.clone()),
            settings,
            db,
            store,
            tasks,
            evidence,
            metrics,
            instance,
            _staging: staging,
            keys,
            rules,
            ingest,
            filing,
            disposal,
            fixity,
        };
        app.ingest.recover().await?;
        Ok(Arc::new(app))
    }

    /// Starts the periodic work of a server (`guidang serve`): the audit trail's head entered in
    /// the log, the filing scheduler, the fixity audit and reconciliation. Each runs on one server
    /// of the deployment at a time (a lease in the database).
    pub fn start_background(&self) {
        let s = &self.settings;
        let leased = |lease| {
            Some(Leased {
                db: self.db.clone(),
                lease,
                owner: self.instance.clone(),
            })
        };
        let (evidence, metrics) = (self.evidence.clone(), self.metrics.clone());
        self.tasks.every(
            "audit head",
            Duration::from_secs(s.audit_head_every_secs.max(1)),
            false,
            leased("audit-head"),
            move || {
                let (evidence, metrics) = (evidence.clone(), metrics.clone());
                async move {
                    match evidence.enter_audit_head().await {
                        Ok(true) => {
                            metrics
                                .audit_heads
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "cannot enter the audit trail's head in the log")
                        }
                    }
                }
            },
        );
        let filing = self.filing.clone();
        self.tasks.every(
            "filing scheduler",
            Duration::from_millis(s.filing.scheduler_every_ms.max(10)),
            // As before the supervisor: a restarted server looks at the calendar at once.
            true,
            leased("filing-scheduler"),
            move || {
                let filing = filing.clone();
                async move {
                    if let Err(e) = filing.tick().await {
                        tracing::error!(error = %e, "the filing scheduler failed; it tries again");
                    }
                }
            },
        );
        // Transfer jobs the database holds: a build a stopped server left unfinished resumes at
        // the volume it was writing, an online delivery asked for resumes from the bytes the
        // receiver holds. Each batch's job runs on the one server holding its lease.
        let transfers = self.transfers.clone();
        self.tasks.every(
            "transfer jobs",
            Duration::from_secs(s.transfer_send_every_secs.max(1)),
            true,
            None,
            move || {
                let transfers = transfers.clone();
                async move {
                    if let Err(e) = transfers.resume_builds().await {
                        tracing::error!(error = %e, "cannot resume transfer builds");
                    }
                    transfers.run_due_sends().await;
                }
            },
        );
        // After a filing batch: each filed case's archival code and filing facts are sealed into
        // a new version of its package, a bounded number per round, until none is left. The
        // database says which are left, so a crash loses nothing.
        let versions = self.versions.clone();
        self.tasks.every(
            "filing seal",
            Duration::from_secs(30),
            true,
            leased("filing-seal"),
            move || {
                let versions = versions.clone();
                async move {
                    match versions.seal_pending(500).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            cases = n,
                            "filing facts sealed into new package versions"
                        ),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot seal filing facts; tries again")
                        }
                    }
                }
            },
        );
        // glibc keeps memory freed by many threads in per-thread arenas instead of returning it
        // to the kernel; after a burst of large submissions that is most of the resident size.
        // Giving it back every minute costs a few milliseconds (scripts/fuzz_memory.py: over
        // 60,000 mutated submissions resident memory ends 1.3x its warm-up with this, 1.4x
        // without; the rest is SQLite's page caches filling to their bound, not a leak).
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        self.tasks.every(
            "memory trim",
            Duration::from_secs(60),
            false,
            None,
            || async {
                // SAFETY: malloc_trim only releases free heap pages back to the kernel.
                let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
            },
        );
        // Another process on this data directory (an import) may end mid-work at any time.
        let (root, grace) = (s.staging_root(), Duration::from_secs(s.recovery_grace_secs));
        self.tasks.every(
            "staging sweep",
            Duration::from_secs(s.staging_sweep_every_secs.max(1)),
            false,
            None,
            move || {
                let root = root.clone();
                async move {
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::staging::sweep_and_log(&root, grace)
                    })
                    .await;
                }
            },
        );
        if s.fixity_bytes_per_hour > 0 {
            let fixity = self.fixity.clone();
            let (budget, min_interval) = (
                s.fixity_bytes_per_hour,
                Duration::from_secs(s.fixity_min_interval_secs),
            );
            let lease = Leased {
                db: self.db.clone(),
                lease: "fixity-audit",
                owner: self.instance.clone(),
            };
            self.tasks.spawn_until_stopped("fixity audit", move |stop| {
                crate::fixity::run_background(fixity, lease, budget, min_interval, stop)
            });
        }
    }

    /// Stops the background work, lets running writes finish (up to `grace`) and drains the
    /// recorder, so that no write is cut off half-way.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// The database, for maintenance and tests; services own their queries.
    pub fn db(&self) -> &Db {
        &self.db
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn rules(&self) -> &Rules {
        &self.rules
    }
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }
    pub fn cases(&self) -> &Cases {
        &self.cases
    }
    pub fn filing(&self) -> &Arc<Filing> {
        &self.filing
    }
    pub fn disposal(&self) -> &Disposal {
        &self.disposal
    }
    pub fn fixity(&self) -> &Fixity {
        &self.fixity
    }
    pub fn versions(&self) -> &Versions {
        &self.versions
    }
    pub fn digitised(&self) -> &Digitised {
        &self.digitised
    }
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }
}
