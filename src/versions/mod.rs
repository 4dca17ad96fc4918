//! Package versions. A case's package is never changed: what is added later (digitised copies of
//! paper originals, the filing facts) makes version N+1, a complete BagIt bag of its own that
//! holds the new payload and an `archive.xml` naming every earlier version's tag-manifest SHA-256
//! in its signed part. Earlier payload is referenced, not copied: version N stays where it is,
//! still verifiable alone, and the chain proves N+1 extends it (README, "Package versions").
//!
//! Making a version: [`Versions::base`] reads the case, the caller builds the bag in staging with
//! [`begin`] and [`finish`], and [`Versions::commit`] stores it under a key of its own and records
//! it (version row, files, case row, log entry `guidang-aip-v1`, audit trail) in one transaction.
//! The case row is updated only if it still describes version N, so two versions made at once
//! cannot both become N+1; the loser's object is removed.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::auth::Principal;
use crate::config::Settings;
use crate::db::cases::{CaseRow, CaseStatus, FileRow};
use crate::db::versions::{CaseUpdate, VersionRow, record_on};
use crate::db::{Db, DbError};
use crate::evidence::{Evidence, note::aip_entry, trail_event};
use crate::keys::Keys;
use crate::pipeline::package::{BagInfo, Finished, PackageWriter};
use crate::signing::Signer;
use crate::storage::{Store, StoreError};
use crate::xml::Doc;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("no case {0}")]
    NotFound(String),
    #[error("case {0} has been disposed of; its package no longer exists")]
    Disposed(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("I/O while making a package version: {0}")]
    Io(#[from] io::Error),
}

impl From<DbError> for VersionError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(m) => VersionError::Conflict(m),
            e => VersionError::Db(e),
        }
    }
}

/// The case a new version extends.
#[derive(Debug, Clone)]
pub struct Base {
    pub case: CaseRow,
    pub earlier: Vec<VersionRow>,
    pub next: i64,
    /// The filing facts, when the case is filed: sealed into every later version.
    pub filing: Option<FilingFacts>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FilingFacts {
    pub archival_code: String,
    pub batch: String,
    pub filed_at: String,
    pub late: bool,
}

impl Base {
    pub fn previous_sha256(&self) -> &str {
        &self.case.tagmanifest_sha256
    }
}

/// What kind of version, recorded with it and in its archive.xml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Digitised,
    Filing,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Digitised => "digitised",
            Kind::Filing => "filing",
        }
    }
}

#[derive(Clone)]
pub struct Versions {
    settings: Arc<Settings>,
    db: Db,
    store: Store,
    evidence: Evidence,
    keys: Arc<Keys>,
}

/// A version recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Made {
    pub archive_id: String,
    pub version: i64,
    pub kind: &'static str,
    pub tagmanifest_sha256: String,
    pub previous_sha256: String,
    pub package_size: i64,
    pub files: Vec<FileRow>,
}

impl Versions {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        store: Store,
        evidence: Evidence,
        keys: Arc<Keys>,
    ) -> Versions {
        Versions {
            settings,
            db,
            store,
            evidence,
            keys,
        }
    }

    pub fn signer(&self) -> Arc<Signer> {
        self.keys.signer()
    }

    /// The SM2 key, where packages are to be signed with it too.
    pub fn sm2(&self) -> Option<Arc<crate::signing_sm2::Sm2Signer>> {
        self.keys.sm2().filter(|_| self.settings.sm2.sign_packages)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The SHA-256 of every digitised file the case holds already, with where it is.
    pub async fn digitised_digests(
        &self,
        archive_id: &str,
    ) -> Result<std::collections::HashMap<String, String>, VersionError> {
        Ok(self
            .db
            .case_files(archive_id)
            .await?
            .into_iter()
            .filter(|f| f.role == "digitised")
            .map(|f| (f.sha256, format!("version {}: {}", f.version, f.path)))
            .collect())
    }

    /// An audit-trail row about a case's versions (refusals; successes are written with them).
    pub async fn audit(&self, who: &Principal, action: &str, target: &str, outcome: &str) {
        self.evidence.audit(who, action, target, outcome).await;
    }

    /// The case a new version would extend: 404 if there is none, 410 if it was disposed of.
    pub async fn base(&self, archive_id: &str) -> Result<Base, VersionError> {
        let case = self
            .db
            .case(archive_id)
            .await?
            .ok_or_else(|| VersionError::NotFound(archive_id.to_string()))?;
        if case.status == CaseStatus::Disposed {
            return Err(VersionError::Disposed(archive_id.to_string()));
        }
        let earlier = self.db.versions(archive_id).await?;
        let filing = match (&case.archival_code, &case.filing_batch, &case.filed_at) {
            (Some(code), Some(batch), Some(at)) if case.status == CaseStatus::Filed => {
                Some(FilingFacts {
                    archival_code: code.clone(),
                    batch: batch.clone(),
                    filed_at: at.clone(),
                    late: case.filing_late != 0,
                })
            }
            _ => None,
        };
        Ok(Base {
            next: case.version + 1,
            case,
            earlier,
            filing,
        })
    }

    /// Seals a filed case's archival code, filing batch and time into its package: a new version
    /// whose archive.xml carries them (unless a version already signs this filing). Returns the
    /// version made, if one was.
    pub async fn seal_filing_if_needed(
        &self,
        archive_id: &str,
        who: &Principal,
    ) -> Result<Option<Made>, VersionError> {
        // Another sealer (the background task, another server, a draft) may make the version
        // first: then this one loses the race, reads the case again and finds it sealed.
        let mut tries = 0;
        loop {
            match self.seal_filing_once(archive_id, who).await {
                Err(VersionError::Conflict(_)) if tries < 3 => tries += 1,
                r => return r,
            }
        }
    }

    async fn seal_filing_once(
        &self,
        archive_id: &str,
        who: &Principal,
    ) -> Result<Option<Made>, VersionError> {
        let base = self.base(archive_id).await?;
        let Some(f) = base.filing.clone() else {
            return Ok(None);
        };
        if base.case.sealed_filing.as_deref() == Some(f.batch.as_str()) {
            return Ok(None);
        }
        let path = self.staging_path(&base)?;
        let staged = tempfile::TempPath::try_from_path(&path)?;
        let (signer, sm2, fonds, agent, b2) = (
            self.signer(),
            self.sm2(),
            self.settings.fonds_code.clone(),
            who.clone(),
            base.clone(),
        );
        let finished = tokio::task::spawn_blocking(move || -> io::Result<Finished> {
            let now = chrono::Utc::now().fixed_offset();
            let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let pkg = begin(&path, &b2, &now)?;
            let xml = archive_xml(&b2, Kind::Filing, &fonds, &[], &agent, &at, |_| Ok(()))?;
            finish(pkg, &b2, &fonds, &xml, (&signer, sm2.as_deref()), &now)
        })
        .await
        .map_err(|e| VersionError::Io(io::Error::other(e)))??;
        let made = self
            .commit(
                &base,
                Kind::Filing,
                finished,
                staged,
                vec![],
                CaseUpdate {
                    digitised_pages: 0,
                    sealed_filing: Some(&f.batch),
                },
                serde_json::to_value(&f).unwrap_or_default(),
                who,
            )
            .await?;
        Ok(Some(made))
    }

    /// Seals the filing facts of up to `limit` filed cases whose packages do not sign them yet
    /// (the background catch-up after a filing batch). Returns how many were sealed.
    pub async fn seal_pending(&self, limit: i64) -> Result<usize, VersionError> {
        let who = Principal::scheduler();
        let mut n = 0;
        for id in self.db.unsealed_filed(limit).await? {
            match self.seal_filing_if_needed(&id, &who).await {
                Ok(Some(_)) => n += 1,
                Ok(None) => {}
                // Disposed or versioned meanwhile: the next round sees the new state.
                Err(VersionError::Conflict(_) | VersionError::Disposed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Where the bag of a new version is built (removed unless committed).
    pub fn staging_path(&self, base: &Base) -> io::Result<PathBuf> {
        let dir = self.settings.tmp_dir();
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!(
            "{}.v{}.{}.zip",
            base.case.archive_id,
            base.next,
            uuid::Uuid::now_v7().simple()
        )))
    }

    /// Stores the finished bag and records it. `files` are the payload files the version adds
    /// (paths as the case lists them, offsets inside this version's package).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        base: &Base,
        kind: Kind,
        finished: Finished,
        staged: tempfile::TempPath,
        files: Vec<FileRow>,
        update: CaseUpdate<'_>,
        detail: serde_json::Value,
        agent: &Principal,
    ) -> Result<Made, VersionError> {
        let archive_id = base.case.archive_id.clone();
        // A key of its own: a version that loses a race never overwrites the winner's object.
        // The random tail of a v7 uuid (its head is the millisecond, shared by claims made at
        // once).
        let claim = uuid::Uuid::now_v7().simple().to_string();
        let claim = &claim[20..];
        let key = format!("packages/{archive_id}/v{}-{claim}.zip", base.next);
        let intent = format!("{archive_id}@v{}-{claim}", base.next);
        self.evidence
            .record(crate::evidence::recorder::Write::Intent {
                archive_id: intent.clone(),
                object_key: key.clone(),
            })
            .await?;
        if let Err(e) = self.store.commit(&staged, &key).await {
            let _ = self.db.delete_intent(&intent).await;
            return Err(e.into());
        }
        crate::failpoint::failpoint("version_after_store");
        let row = VersionRow {
            archive_id: archive_id.clone(),
            version: base.next,
            kind: kind.as_str().into(),
            package_key: key.clone(),
            package_size: finished.size as i64,
            tagmanifest_sha256: finished.tagmanifest_sha256.clone(),
            previous_sha256: Some(base.previous_sha256().to_string()),
            signature_json: serde_json::to_string(&finished.signature)
                .map_err(|e| VersionError::Io(io::Error::other(e)))?,
            key_id: finished.signature.key_id.clone(),
            created_at: crate::db::now_rfc3339(),
            created_by: agent.label(),
            detail_json: Some(detail.to_string()),
        };
        let recorded: Result<(), DbError> = async {
            let mut tx = self.db.begin_write().await?;
            record_on(&mut tx, &row, &files, &update, &intent).await?;
            crate::db::cases::insert_events_on(
                &mut tx,
                &archive_id,
                &[crate::db::cases::EventRow {
                    kind: format!("version_{}", kind.as_str()),
                    at: row.created_at.clone(),
                    agent: agent.label(),
                    detail: Some(format!("version {} stored as {key}", base.next)),
                }],
            )
            .await?;
            self.evidence
                .log_on(
                    &mut tx,
                    "aip",
                    Some(&archive_id),
                    &aip_entry(&archive_id, &row.tagmanifest_sha256),
                )
                .await?;
            self.evidence
                .trail_on(
                    &mut tx,
                    &trail_event(
                        agent,
                        match kind {
                            Kind::Digitised => "add_digitised",
                            Kind::Filing => "seal_filing",
                        },
                        &archive_id,
                        &format!("version {}", base.next),
                    ),
                )
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        match recorded {
            Ok(()) => {
                self.evidence.committed();
                Ok(Made {
                    archive_id,
                    version: base.next,
                    kind: kind.as_str(),
                    tagmanifest_sha256: row.tagmanifest_sha256,
                    previous_sha256: base.previous_sha256().to_string(),
                    package_size: row.package_size,
                    files,
                })
            }
            Err(e) => {
                let _ = self.store.delete(&key).await;
                let _ = self.db.delete_intent(&intent).await;
                Err(e.into())
            }
        }
    }
}

/// Starts the bag of version `base.next` at `path`.
pub fn begin(
    path: &std::path::Path,
    base: &Base,
    now: &DateTime<FixedOffset>,
) -> io::Result<PackageWriter> {
    PackageWriter::create(path, &base.case.archive_id, now)
}

/// `archive.xml` of a later version: the case's identity, every earlier version's tag-manifest
/// digest, the filing facts if filed, this version's payload files, and what `body` adds.
pub fn archive_xml(
    base: &Base,
    kind: Kind,
    fonds_code: &str,
    files: &[FileRow],
    agent: &Principal,
    at: &str,
    body: impl FnOnce(&mut Doc<Vec<u8>>) -> io::Result<()>,
) -> io::Result<String> {
    let c = &base.case;
    let mut d = Doc::in_memory()?;
    d.open(
        "archive",
        &[("xmlns", "urn:guidang:archive:1"), ("version", "1")],
    )?;
    let next = base.next.to_string();
    d.text("archive_id", &c.archive_id)?
        .text("package_version", &next)?
        .text("version_kind", kind.as_str())?
        .text("fonds_code", fonds_code)?;
    d.open("case_key", &[])?
        .text("social_code", &c.social_code)?
        .text("task_code", &c.task_code)?
        .text("project_id", &c.project_id)?
        .close("case_key")?;
    d.text("project_name", &c.project_name)?
        .text("year", &c.year.to_string())?
        .text("content_digest", &format!("sha256:{}", c.content_digest))?;
    d.open("previous_versions", &[])?;
    for v in &base.earlier {
        let n = v.version.to_string();
        d.empty(
            "version",
            &[
                ("number", n.as_str()),
                ("kind", v.kind.as_str()),
                ("tagmanifest_sha256", v.tagmanifest_sha256.as_str()),
                ("created_at", v.created_at.as_str()),
            ],
        )?;
    }
    d.close("previous_versions")?;
    if let Some(f) = &base.filing {
        d.empty(
            "filing",
            &[
                ("archival_code", f.archival_code.as_str()),
                ("batch", f.batch.as_str()),
                ("filed_at", f.filed_at.as_str()),
                ("late", if f.late { "true" } else { "false" }),
            ],
        )?;
    }
    d.open("retention", &[])?
        .text("assigned", c.retention.as_deref().unwrap_or(""))?
        .text("basis", c.retention_basis.as_deref().unwrap_or(""))?
        .close("retention")?;
    d.text("security_classification", &c.security_classification)?;
    d.open("files", &[])?;
    for f in files {
        crate::pipeline::file_element(&mut d, &f.path, f)?;
    }
    d.close("files")?;
    body(&mut d)?;
    let by = agent.label();
    d.open("events", &[])?
        .empty(
            "event",
            &[
                ("type", kind.as_str()),
                ("time", at),
                ("agent", by.as_str()),
            ],
        )?
        .close("events")?
        .close("archive")?;
    Ok(d.into_string())
}

/// Writes `archive.xml`, the manifests and the signature. bag-info names the version and the
/// previous version's tag manifest, so the link is covered by the signature twice over.
pub fn finish(
    mut pkg: PackageWriter,
    base: &Base,
    fonds_code: &str,
    archive_xml: &str,
    (signer, sm2): (&Signer, Option<&crate::signing_sm2::Sm2Signer>),
    now: &DateTime<FixedOffset>,
) -> io::Result<Finished> {
    pkg.add_payload_bytes("archive.xml", archive_xml.as_bytes())?;
    let c = &base.case;
    let info = BagInfo {
        source_organization: c.lead_department.clone(),
        external_identifier: format!("{}/{}/{}", c.social_code, c.task_code, c.project_id),
        bagging_date: now.format("%Y-%m-%d").to_string(),
        extra: vec![
            ("Guidang-Fonds-Code".into(), fonds_code.to_string()),
            ("Guidang-Package-Version".into(), base.next.to_string()),
            (
                "Guidang-Previous-Version".into(),
                format!("{} sha256:{}", base.next - 1, base.previous_sha256()),
            ),
        ],
    };
    pkg.finish(
        info,
        signer,
        sm2,
        &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}
