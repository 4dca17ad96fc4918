//! Reading cases: who may see which case, the typed views of a case, a list and a check report,
//! and personal data masked for the roles that do not need it.

use serde_json::json;

use crate::auth::{Principal, Role};
use crate::db::cases::FileRow;
use crate::db::cases::{CaseFilter, CaseRow, EventRow};
use crate::db::{Db, DbError};
use crate::evidence::Evidence;
use crate::storage::{ByteStream, Store, StoreError};

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
    ) -> Result<Option<serde_json::Value>, DbError> {
        let v = self.case_view(who, archive_id).await?;
        if v.is_some() {
            self.evidence
                .audit(who, "read_case", archive_id, "200")
                .await;
        }
        Ok(v)
    }

    /// The stored package of `case` (whose content exists), entered in the audit trail.
    pub async fn package(
        &self,
        who: &Principal,
        case: &CaseRow,
    ) -> Result<(u64, ByteStream), ReadError> {
        let got = self.store.get(&case.package_key).await?;
        self.evidence
            .audit(who, "read_package", &case.archive_id, "200")
            .await;
        Ok(got)
    }

    /// One file of `case`'s package, read where it lies, entered in the audit trail (by case:
    /// a file name may carry personal data).
    pub async fn file(
        &self,
        who: &Principal,
        case: &CaseRow,
        path: &str,
    ) -> Result<(FileRow, ByteStream), ReadError> {
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
        let stream = self
            .store
            .get_range(&case.package_key, start..start + f.size as u64)
            .await?;
        Ok((f, stream))
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
        let sum = crate::ingest::summary(&c, files, vec![]);
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
            "holds": self.db.holds_of(&c.archive_id).await?,
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
        caller: &Principal,
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
        caller: &Principal,
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
}
