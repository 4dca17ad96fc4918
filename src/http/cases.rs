//! `/api/v1/cases`: submit, list, show, download the package, read one file, checks, audits.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::auth::{CaseOf, CaseReaders, ContentOf, PackageReaders, Submitters, Then};
use super::error::ApiError;
use crate::app::App;
use crate::cases::ReadError;
use crate::db::cases::CaseFilter;
use crate::ingest::Outcome;

pub async fn submit(
    req: HttpRequest,
    Then(who, body): Then<Submitters, web::Payload>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let limit = app.settings().limits.max_body_bytes;
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
    refuse_declared_over(&req, limit)?;
    // The ingest service writes the submission's one audit-trail row, whatever the outcome.
    let (status, s) = match app.ingest().ingest_body(body, who.0).await? {
        Outcome::Created(s) => (actix_web::http::StatusCode::CREATED, s),
        Outcome::Existing(s) => (actix_web::http::StatusCode::OK, s),
    };
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, format!("/api/v1/cases/{}", s.archive_id)))
        .json(s))
}

/// 413 before the body is read when its declared length is over `limit`.
pub fn refuse_declared_over(req: &HttpRequest, limit: u64) -> Result<(), ApiError> {
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct ListQuery {
    year: Option<i64>,
    task_code: Option<String>,
    status: Option<String>,
    q: Option<String>,
    /// The organisation (unified social credit code); a submitter sees its own anyway.
    social_code: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn list(
    Then(who, q): Then<CaseReaders, web::Query<ListQuery>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (page, per_page) = super::paging(q.page, q.per_page, 50, 500)?;
    let f = CaseFilter {
        year: q.year,
        task_code: q.task_code.filter(|s| !s.is_empty()),
        status: q.status.filter(|s| !s.is_empty()),
        q: q.q.filter(|s| !s.is_empty()),
        org: q.social_code.filter(|s| !s.is_empty()),
        page,
        per_page,
    };
    Ok(HttpResponse::Ok().json(app.cases().list(&who, f).await?))
}

pub async fn show(
    c: CaseOf<CaseReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = &c.case.archive_id;
    let v = app
        .cases()
        .read(&c.who, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case {id}")))?;
    Ok(HttpResponse::Ok().json(v))
}

pub async fn checks(
    c: CaseOf<CaseReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = &c.case.archive_id;
    let v = app
        .cases()
        .checks(&c.who, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case {id}")))?;
    Ok(HttpResponse::Ok().json(v))
}

/// Re-verifies a stored package now (fixity audit).
pub async fn verify_now(
    c: ContentOf<PackageReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let audit = app
        .fixity()
        .verify(&c.who, &c.case)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(audit))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    failed: Option<bool>,
    limit: Option<i64>,
}

pub async fn audits(
    Then(_who, q): Then<PackageReaders, web::Query<AuditQuery>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let items = app
        .fixity()
        .list(
            q.failed.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items})))
}

/// `?version=N`: one version of a case's package (default: the newest).
#[derive(Deserialize)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            e @ (ReadError::NoFile(..) | ReadError::NoVersion(..)) => {
                ApiError::NotFound(e.to_string())
            }
            e @ ReadError::NoContent(..) => ApiError::Forbidden(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

/// The evidence of a package: everything `guidang verify` needs to prove it sealed, complete as
/// described and in the log, without the payload (and its personal data).
pub async fn evidence(
    c: ContentOf<PackageReaders>,
    q: web::Query<VersionQuery>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let zip = app.cases().evidence(&c.who, &c.case, q.version).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}.evidence.zip\"",
                c.case.archive_id
            ),
        ))
        .body(zip))
}

pub async fn package(
    c: ContentOf<PackageReaders>,
    q: web::Query<VersionQuery>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (v, size, stream) = app.cases().package(&c.who, &c.case, q.version).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}.v{}.zip\"",
                c.case.archive_id, v.version
            ),
        ))
        .insert_header(("X-Package-Version", v.version.to_string()))
        .insert_header((header::ETAG, format!("\"{}\"", v.tagmanifest_sha256)))
        .no_chunking(size)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}

pub async fn file(
    c: ContentOf<PackageReaders>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (_, file_path) = path.into_inner();
    let (f, stream) = app.cases().file(&c.who, &c.case, &file_path).await?;
    Ok(HttpResponse::Ok()
        .content_type(f.mime.clone())
        .insert_header((header::ETAG, format!("\"sha256:{}\"", f.sha256)))
        .insert_header(("X-Checksum-SM3", f.sm3.clone()))
        .no_chunking(f.size as u64)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}
