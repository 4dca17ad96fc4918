//! Reading cases: who may see which case, the typed views of a case, a list and a check report,
//! and personal data masked for the roles that do not need it.

use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{Principal, Role};
use crate::db::cases::FileRow;
use crate::db::cases::{CaseFilter, CaseRow, CaseStatus, EventRow};
use crate::db::holds::Hold;
use crate::db::versions::VersionRow;
use crate::db::{Db, DbError};
use crate::evidence::Evidence;
use crate::ingest::PackageInfo;
use crate::storage::{ByteStream, Store, StoreError};

/// The full description of a case (`GET /api/v1/cases/{id}`).
#[derive(Debug, Serialize)]
pub struct CaseView {
    pub archive_id: String,
    pub status: CaseStatus,
    pub version: i64,
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub project_name: String,
    pub task_name: String,
    pub task_type: String,
    pub year: i64,
    pub result: String,
    pub security_classification: String,
    pub retention: Option<String>,
    pub retention_proposed: Option<String>,
    pub retention_rule_version: Option<i64>,
    pub retention_basis: Option<String>,
    pub archival_code: Option<String>,
    pub filing: FilingState,
    pub disposal: DisposalState,
    pub holds: Vec<Hold>,
    pub channel: String,
    pub archived_at: String,
    /// metadata.xml as recorded, personal fields masked for roles that do not need them.
    pub metadata: Value,
    pub files: Vec<FileRow>,
    pub licenses: Value,
    pub package: PackageInfo,
    pub warnings: Value,
    pub events: Vec<EventRow>,
    pub checks: Value,
    /// Every version of the package, oldest first; the newest is the one `package` describes.
    pub versions: Vec<VersionRow>,
    /// Pages of paper originals the metadata declares, and pages of digitised copies added.
    pub paper_pages: Option<i64>,
    pub digitised_pages: i64,
    /// The transfer to the archive authority, once receipted: batch and receipt time.
    pub transfer: Option<TransferState>,
}

#[derive(Debug, Serialize)]
pub struct TransferState {
    pub transfer_id: String,
    pub received_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FilingState {
    pub batch_id: Option<String>,
    pub filed_at: Option<String>,
    pub late: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DisposalState {
    pub list_id: Option<String>,
    pub disposed_at: Option<String>,
}

/// One line of the case list.
#[derive(Debug, Serialize)]
pub struct CaseLine {
    pub archive_id: String,
    pub social_code: String,
    pub task_code: String,
    pub project_id: String,
    pub project_name: String,
    pub task_name: String,
    pub year: i64,
    pub status: CaseStatus,
    pub result: String,
    pub archival_code: Option<String>,
    pub retention: Option<String>,
    pub archived_at: String,
}

/// A page of the case list (`GET /api/v1/cases`).
#[derive(Debug, Serialize)]
pub struct CaseList {
    pub items: Vec<CaseLine>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The four-property check report of a case (`GET /api/v1/cases/{id}/checks`).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub archive_id: String,
    pub standard: &'static str,
    pub stages: Vec<CheckStage>,
}

#[derive(Debug, Serialize)]
pub struct CheckStage {
    pub stage: &'static str,
    pub items: Value,
}

pub struct Cases {
    db: Db,
    store: Store,
    evidence: Evidence,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("case {0} has no file {1}")]
    NoFile(String, String),
    #[error("case {0} has no package version {1}")]
    NoVersion(String, i64),
    /// An auditor token without `--content`: the evidence of a package, not its content.
    #[error(
        "this token reads the evidence of a package (GET /api/v1/cases/{0}/evidence), not its content, which holds personal data; an auditor who must read content needs a token created with --content"
    )]
    NoContent(String),
    #[error("cannot build the evidence download: {0}")]
    Evidence(String),
}

fn mask_name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => format!("{first}{}", "*".repeat(c.count().max(1))),
        None => String::new(),
    }
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

impl Cases {
    pub fn new(db: Db, store: Store, evidence: Evidence) -> Cases {
        Cases {
            db,
            store,
            evidence,
        }
    }

    /// The case view for `who`, entered in the audit trail.
    pub async fn read(
        &self,
        who: &Principal,
        archive_id: &str,
    ) -> Result<Option<CaseView>, DbError> {
        let v = self.case_view(who, archive_id).await?;
        if v.is_some() {
            self.evidence
                .audit(who, "read_case", archive_id, "200")
                .await;
        }
        Ok(v)
    }

    /// Version `version` (default: the newest) of `case`'s package.
    pub async fn version(
        &self,
        case: &CaseRow,
        version: Option<i64>,
    ) -> Result<VersionRow, ReadError> {
        let want = version.unwrap_or(case.version);
        self.db
            .versions(&case.archive_id)
            .await?
            .into_iter()
            .find(|v| v.version == want)
            .ok_or_else(|| ReadError::NoVersion(case.archive_id.clone(), want))
    }

    /// A stored package version of `case` (whose content exists), entered in the audit trail.
    pub async fn package(
        &self,
        who: &Principal,
        case: &CaseRow,
        version: Option<i64>,
    ) -> Result<(VersionRow, u64, ByteStream), ReadError> {
        if !who.reads_content() {
            return Err(ReadError::NoContent(case.archive_id.clone()));
        }
        let v = self.version(case, version).await?;
        let (size, stream) = self.store.get(&v.package_key).await?;
        self.evidence
            .audit(who, "read_package", &case.archive_id, "200")
            .await;
        Ok((v, size, stream))
    }

    /// One file of `case`'s package, read where it lies, entered in the audit trail (by case:
    /// a file name may carry personal data).
    pub async fn file(
        &self,
        who: &Principal,
        case: &CaseRow,
        path: &str,
    ) -> Result<(FileRow, ByteStream), ReadError> {
        if !who.reads_content() {
            return Err(ReadError::NoContent(case.archive_id.clone()));
        }
        let wanted = crate::pipeline::unpack::normalize_name(path);
        let f = self
            .db
            .case_files(&case.archive_id)
            .await?
            .into_iter()
            .find(|f| f.path == wanted)
            .ok_or_else(|| ReadError::NoFile(case.archive_id.clone(), wanted))?;
        self.evidence
            .audit(who, "read_file", &case.archive_id, "200")
            .await;
        let start = f.pkg_offset as u64;
        let v = self.version(case, Some(f.version)).await?;
        let stream = self
            .store
            .get_range(&v.package_key, start..start + f.size as u64)
            .await?;
        Ok((f, stream))
    }

    /// The evidence of `case`'s package: its tag files (bagit.txt, bag-info.txt, both payload
    /// manifests, the tag manifest), signature.json and data/archive.xml, copied byte for byte,
    /// with the log's inclusion proof and a note that the payload is withheld. `guidang verify`
    /// proves from it that the package is sealed, complete as described and in the log, without
    /// the submission's bytes (and their personal data). Entered in the audit trail.
    pub async fn evidence(
        &self,
        who: &Principal,
        case: &CaseRow,
        version: Option<i64>,
    ) -> Result<Vec<u8>, ReadError> {
        let v = self.version(case, version).await?;
        let proof = self
            .evidence
            .log()
            .proof_for_version(&case.archive_id, &v.tagmanifest_sha256)
            .await
            .map_err(|e| ReadError::Evidence(e.to_string()))?
            .map(|p| p.format());
        let reader = self.store.reader(
            &v.package_key,
            v.package_size as u64,
            tokio::runtime::Handle::current(),
        );
        let id = case.archive_id.clone();
        let zip = tokio::task::spawn_blocking(move || evidence_zip(reader, &id, proof))
            .await
            .map_err(|e| ReadError::Evidence(e.to_string()))?
            .map_err(|e| ReadError::Evidence(e.to_string()))?;
        self.evidence
            .audit(who, "read_evidence", &case.archive_id, "200")
            .await;
        Ok(zip)
    }

    /// Whether `caller` may see the case at all (submitters: their organisation only).
    fn visible(caller: &Principal, c: &CaseRow) -> bool {
        caller.role != Role::Submitter || caller.org.as_deref() == Some(c.social_code.as_str())
    }

    pub async fn case_for(
        &self,
        caller: &Principal,
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
        caller: &Principal,
        archive_id: &str,
    ) -> Result<Option<CaseView>, DbError> {
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
        let mut metadata: Value = serde_json::from_str(&c.metadata_json).unwrap_or_default();
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
        let sum = crate::ingest::summary(&c, files, vec![]);
        Ok(Some(CaseView {
            versions: self.db.versions(&c.archive_id).await?,
            transfer: c.transferred_in.clone().map(|transfer_id| TransferState {
                transfer_id,
                received_at: c.transferred_at.clone(),
            }),
            paper_pages: c.paper_pages,
            digitised_pages: c.digitised_pages,
            holds: self.db.holds_of(&c.archive_id).await?,
            warnings: serde_json::from_str(&c.warnings_json).unwrap_or(json!([])),
            checks: serde_json::from_str(&c.checks_json).unwrap_or(json!([])),
            filing: FilingState {
                batch_id: c.filing_batch,
                filed_at: c.filed_at,
                late: c.filing_late != 0,
                problem: c.filing_problem,
            },
            disposal: DisposalState {
                list_id: c.disposal_list,
                disposed_at: c.disposed_at,
            },
            archive_id: c.archive_id,
            status: c.status,
            version: c.version,
            social_code: c.social_code,
            task_code: c.task_code,
            project_id: c.project_id,
            project_name: c.project_name,
            task_name: c.task_name,
            task_type: c.task_type,
            year: c.year,
            result: c.result,
            security_classification: c.security_classification,
            retention: c.retention,
            retention_proposed: c.retention_proposed,
            retention_rule_version: c.retention_rule_version,
            retention_basis: c.retention_basis,
            archival_code: c.archival_code,
            channel: c.source,
            archived_at: c.archived_at,
            metadata,
            files: sum.files,
            licenses,
            package: sum.package,
            events,
        }))
    }

    pub async fn list(&self, caller: &Principal, mut f: CaseFilter) -> Result<CaseList, DbError> {
        if caller.role == Role::Submitter {
            f.org = Some(caller.org.clone().unwrap_or_default());
        }
        let (rows, total) = self.db.list_cases(&f).await?;
        let items = rows
            .into_iter()
            .map(|c| CaseLine {
                archive_id: c.archive_id,
                social_code: c.social_code,
                task_code: c.task_code,
                project_id: c.project_id,
                project_name: c.project_name,
                task_name: c.task_name,
                year: c.year,
                status: c.status,
                result: c.result,
                archival_code: c.archival_code,
                retention: c.retention,
                archived_at: c.archived_at,
            })
            .collect();
        Ok(CaseList {
            items,
            total,
            page: f.page,
            per_page: f.per_page,
        })
    }

    /// The four-property check report of a case as `caller` may see it.
    pub async fn checks(
        &self,
        caller: &Principal,
        archive_id: &str,
    ) -> Result<Option<CheckReport>, DbError> {
        let Some(c) = self.case_for(caller, archive_id).await? else {
            return Ok(None);
        };
        Ok(Some(CheckReport {
            archive_id: c.archive_id,
            standard: "DA/T 70-2018",
            stages: vec![CheckStage {
                stage: "GD",
                items: serde_json::from_str(&c.checks_json).unwrap_or(json!([])),
            }],
        }))
    }
}

fn evidence_zip(
    reader: crate::storage::StoreReader,
    archive_id: &str,
    proof: Option<String>,
) -> zip::result::ZipResult<Vec<u8>> {
    use std::io::Write;
    let mut pkg = zip::ZipArchive::new(std::io::BufReader::with_capacity(1 << 16, reader))?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    // The package's tag files and archive.xml: everything verify checks but the payload.
    let copied = crate::verify::REQUIRED_TAG_FILES
        .into_iter()
        .chain(["data/archive.xml"]);
    for rel in copied {
        let name = format!("{archive_id}/{rel}");
        let entry = pkg.by_name(&name)?;
        out.raw_copy_file(entry)?;
    }
    // The SM2 signature over the same tag manifest, where the package has one.
    if let Ok(entry) = pkg.by_name(&format!(
        "{archive_id}/{}",
        crate::signing_sm2::SIGNATURE_FILE
    )) {
        out.raw_copy_file(entry)?;
    }
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    out.start_file(
        format!("{archive_id}/{}", crate::verify::EVIDENCE_NOTE),
        opts,
    )?;
    out.write_all(
        format!(
            "Evidence of archival package {archive_id}.\n\
             The payload (data/submission/) is withheld: it holds personal data. The tag files,\n\
             both payload manifests, signature.json and data/archive.xml are the package's own\n\
             bytes, so `guidang verify` checks the seal, the manifests against archive.xml and\n\
             the log inclusion proof ({}) without them.\n",
            crate::verify::EVIDENCE_PROOF
        )
        .as_bytes(),
    )?;
    if let Some(p) = proof {
        out.start_file(
            format!("{archive_id}/{}", crate::verify::EVIDENCE_PROOF),
            opts,
        )?;
        out.write_all(p.as_bytes())?;
    }
    Ok(out.finish()?.into_inner())
}
