//! `/api/v1/cases`: submit, list, show, download the package, read one file.

use std::sync::Arc;

use actix_web::ResponseError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::auth::Auth;
use super::error::ApiError;
use crate::archive::{Archive, Outcome};
use crate::auth::Role;
use crate::db::cases::CaseFilter;
use crate::pipeline::Agent;
use crate::pipeline::unpack::normalize_name;

const READERS: &[Role] = &[Role::Submitter, Role::Archivist, Role::Auditor];
const PACKAGE_READERS: &[Role] = &[Role::Archivist, Role::Auditor];

pub async fn submit(
    req: HttpRequest,
    auth: Auth,
    body: web::Payload,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Submitter, Role::Archivist])?.clone();
    let limit = archive.settings.limits.max_body_bytes;
    if let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            ct.as_str(),
            "application/zip" | "application/x-zip-compressed" | "application/octet-stream" | ""
        ) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the submission ZIP as the body with Content-Type: application/zip, not {ct}"
            )));
        }
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let agent = Agent {
        id: caller.token_id.clone(),
        name: caller.name.clone(),
        role: caller.role.as_str().into(),
        org: caller.org.clone(),
        channel: "online",
    };
    let outcome = archive.ingest_body(body, agent).await;
    let (target, result) = match &outcome {
        Ok(Outcome::Created(s)) => (s.archive_id.clone(), "201 archived".to_string()),
        Ok(Outcome::Existing(s)) => (s.archive_id.clone(), "200 identical".to_string()),
        Err(e) => {
            let err = ApiError::from(e.clone());
            (
                "-".to_string(),
                format!("{} {}", err.status_code().as_u16(), err.code()),
            )
        }
    };
    let role = caller.role.as_str();
    archive
        .audit(&caller.token_id, role, "submit", &target, &result)
        .await;
    match outcome? {
        Outcome::Created(s) => Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/v1/cases/{}", s.archive_id)))
            .json(s)),
        Outcome::Existing(s) => Ok(HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/api/v1/cases/{}", s.archive_id)))
            .json(s)),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    year: Option<i64>,
    task_code: Option<String>,
    status: Option<String>,
    q: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn list(
    auth: Auth,
    q: web::Query<ListQuery>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(READERS)?;
    let q = q.into_inner();
    let f = CaseFilter {
        year: q.year,
        task_code: q.task_code.filter(|s| !s.is_empty()),
        status: q.status.filter(|s| !s.is_empty()),
        q: q.q.filter(|s| !s.is_empty()),
        org: None,
        page: q.page.unwrap_or(1).max(1),
        per_page: q.per_page.unwrap_or(50).clamp(1, 500),
    };
    Ok(HttpResponse::Ok().json(archive.list(caller, f).await?))
}

/// A disposed case keeps its tombstone (metadata, digests, approval trail); its content is gone.
fn gone_if_disposed(c: &crate::db::cases::CaseRow) -> Result<(), ApiError> {
    if c.status == "disposed" {
        return Err(ApiError::Gone(format!(
            "the content of case {} was destroyed under disposal list {} at {}",
            c.archive_id,
            c.disposal_list.as_deref().unwrap_or("-"),
            c.disposed_at.as_deref().unwrap_or("-")
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no case {id}"))
}

pub async fn show(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(READERS)?;
    let id = path.into_inner();
    match archive.case_view(caller, &id).await? {
        Some(v) => {
            archive
                .audit(
                    &caller.token_id,
                    caller.role.as_str(),
                    "read_case",
                    &id,
                    "200",
                )
                .await;
            Ok(HttpResponse::Ok().json(v))
        }
        None => Err(not_found(&id)),
    }
}

pub async fn checks(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(READERS)?;
    let id = path.into_inner();
    match archive.checks(caller, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(not_found(&id)),
    }
}

/// Re-verifies a stored package now (fixity audit).
pub async fn verify_now(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(PACKAGE_READERS)?;
    let id = path.into_inner();
    let c = archive
        .case_for(caller, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    gone_if_disposed(&c)?;
    let audit = crate::fixity::audit_case(&archive, &c)
        .await
        .map_err(ApiError::internal)?;
    let outcome = if audit.ok { "ok" } else { "findings" };
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "verify",
            &id,
            outcome,
        )
        .await;
    Ok(HttpResponse::Ok().json(audit))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    failed: Option<bool>,
    limit: Option<i64>,
}

pub async fn audits(
    auth: Auth,
    q: web::Query<AuditQuery>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(PACKAGE_READERS)?;
    let items = crate::fixity::list(
        &archive.db,
        q.failed.unwrap_or(false),
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items})))
}

pub async fn package(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(PACKAGE_READERS)?;
    let id = path.into_inner();
    let c = archive
        .case_for(caller, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    gone_if_disposed(&c)?;
    let (size, stream) = archive.store.get(&c.package_key).await?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "read_package",
            &id,
            "200",
        )
        .await;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{id}.zip\""),
        ))
        .insert_header((header::ETAG, format!("\"{}\"", c.tagmanifest_sha256)))
        .no_chunking(size)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}

pub async fn file(
    auth: Auth,
    path: web::Path<(String, String)>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(PACKAGE_READERS)?;
    let (id, file_path) = path.into_inner();
    let c = archive
        .case_for(caller, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    gone_if_disposed(&c)?;
    let wanted = normalize_name(&file_path);
    let files = archive.db.case_files(&id).await?;
    let f = files
        .into_iter()
        .find(|f| f.path == wanted)
        .ok_or_else(|| ApiError::NotFound(format!("case {id} has no file {wanted}")))?;
    let start = f.pkg_offset as u64;
    // The target is the case, not the file name (which may carry personal data).
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "read_file",
            &id,
            "200",
        )
        .await;
    let stream = archive
        .store
        .get_range(&c.package_key, start..start + f.size as u64)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(f.mime.clone())
        .insert_header((header::ETAG, format!("\"sha256:{}\"", f.sha256)))
        .insert_header(("X-Checksum-SM3", f.sm3.clone()))
        .no_chunking(f.size as u64)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}
