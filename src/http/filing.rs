//! `/api/v1/retention/…` and `/api/v1/filings/…`: retention rules, the yearly filing, its status,
//! its documents and the case systems' completeness declarations.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use super::auth::Auth;
use super::error::ApiError;
use crate::archive::Archive;
use crate::auth::{Caller, Role};
use crate::filing::Actor;

const READERS: &[Role] = &[Role::Archivist, Role::Auditor, Role::Admin];

pub fn actor(c: &Caller) -> Actor {
    Actor {
        id: c.token_id.clone(),
        role: c.role.as_str().into(),
        name: c.name.clone(),
    }
}

#[derive(Deserialize)]
pub struct RulesQuery {
    version: Option<i64>,
}

pub async fn get_rules(
    auth: Auth,
    q: web::Query<RulesQuery>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    let set = match q.version {
        Some(v) => crate::retention::version(&archive.db, v)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no rule version {v}")))?,
        None => crate::retention::current(&archive.db).await?,
    };
    let s = &archive.settings.retention;
    Ok(HttpResponse::Ok().json(json!({
        "version": set.version,
        "rules": set.rules,
        "created_at": set.created_at,
        "created_by": set.created_by,
        "floor_years": s.floor_years,
        "default": {"retention": s.default, "basis": s.default_basis},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    rules: Vec<crate::retention::Rule>,
}

pub async fn put_rules(
    auth: Auth,
    body: web::Json<RulesBody>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Admin])?;
    crate::retention::validate(&body.rules).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let set = archive.put_rules(&body.rules, &caller.token_id).await?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "retention_rules",
            &format!("version {}", set.version),
            "200",
        )
        .await;
    Ok(HttpResponse::Ok().json(&*set))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReevaluateBody {
    #[serde(default)]
    dry_run: bool,
}

pub async fn reevaluate(
    auth: Auth,
    body: Option<web::Json<ReevaluateBody>>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Admin])?;
    let dry_run = body.map(|b| b.dry_run).unwrap_or(false);
    let rules = crate::retention::current(&archive.db).await?;
    let r = crate::retention::reevaluate(
        &archive.db,
        &rules,
        &archive.settings.retention,
        &caller.token_id,
        dry_run,
    )
    .await?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "retention_reevaluate",
            &format!("version {}", rules.version),
            &format!(
                "{} changed{}",
                r.changed,
                if dry_run { " (dry run)" } else { "" }
            ),
        )
        .await;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilingBody {
    year: i64,
}

/// Runs the filing of a year. A large year takes minutes: the answer is 201 with the finished
/// batch if it is done within `filing.respond_within_ms`, otherwise 202 while it goes on in this
/// server (`GET /api/v1/filings/{year}` shows its progress; a run interrupted by a restart is
/// resumed by the next request or by the scheduler).
pub async fn run(
    auth: Auth,
    body: web::Json<FilingBody>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Archivist, Role::Admin])?;
    let (a, who, year) = (archive.get_ref().clone(), actor(caller), body.year);
    let mut task = tokio::spawn(async move { crate::filing::run(&a, year, "manual", &who).await });
    let wait = std::time::Duration::from_millis(archive.settings.filing.respond_within_ms);
    let location = (header::LOCATION, format!("/api/v1/filings/{year}"));
    match tokio::time::timeout(wait, &mut task).await {
        Ok(joined) => {
            let b = joined.map_err(ApiError::internal)??;
            Ok(HttpResponse::Created().insert_header(location).json(b))
        }
        Err(_) => Ok(HttpResponse::Accepted()
            .insert_header(location)
            .json(json!({
                "year": year,
                "state": "running",
                "message": "the filing goes on in the background; follow it at the Location",
            }))),
    }
}

pub async fn status(
    auth: Auth,
    path: web::Path<i64>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    Ok(HttpResponse::Ok().json(crate::filing::status::status(&archive, path.into_inner()).await?))
}

pub async fn put_expected(
    auth: Auth,
    path: web::Path<i64>,
    body: web::Json<crate::filing::status::Expected>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Submitter, Role::Archivist, Role::Admin])?;
    let year = path.into_inner();
    let org = match (caller.role, &body.social_code) {
        (Role::Submitter, Some(o)) if Some(o) != caller.org.as_ref() => {
            return Err(ApiError::Forbidden(format!(
                "this token may declare for organisation {} only",
                caller.org.as_deref().unwrap_or("-")
            )));
        }
        (Role::Submitter, _) => caller.org.clone().unwrap_or_default(),
        (_, Some(o)) => o.clone(),
        (_, None) => {
            return Err(ApiError::BadRequest(
                "social_code: name the organisation whose cases are declared".into(),
            ));
        }
    };
    if let Some((t, n)) = body.counts.iter().find(|(_, n)| **n < 0) {
        return Err(ApiError::BadRequest(format!("counts.{t}: {n} is negative")));
    }
    let (keys, counts) = crate::filing::status::put_expected(&archive, year, &org, &body).await?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "declare_expected",
            &format!("{year} {org}"),
            &format!("{keys} cases, {counts} counts"),
        )
        .await;
    Ok(HttpResponse::Ok()
        .json(json!({"year": year, "social_code": org, "cases": keys, "task_codes": counts})))
}

/// A stored document (register, form, destruction register), streamed.
pub async fn stream_document(
    archive: &Archive,
    docs: Option<&serde_json::Value>,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let doc: crate::documents::Document = docs
        .and_then(|d| d.as_array())
        .and_then(|a| a.iter().find(|d| d["name"] == name))
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .ok_or_else(|| ApiError::NotFound(format!("no document {name} (yet)")))?;
    let (size, stream) = archive.store.get(&doc.key).await?;
    let ct = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/xml"
    };
    Ok(HttpResponse::Ok()
        .content_type(ct)
        .insert_header((header::ETAG, format!("\"sha256:{}\"", doc.sha256)))
        .insert_header(("X-Checksum-SM3", doc.sm3.clone()))
        .no_chunking(size)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}

pub async fn document(
    auth: Auth,
    path: web::Path<(i64, String, String)>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(READERS)?;
    let (year, batch_id, name) = path.into_inner();
    let b = crate::filing::batch(&archive, &batch_id)
        .await?
        .filter(|b| b.year == year)
        .ok_or_else(|| ApiError::NotFound(format!("no filing batch {batch_id} of {year}")))?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "read_filing_document",
            &batch_id,
            &name,
        )
        .await;
    stream_document(&archive, b.documents.as_ref(), &name).await
}
