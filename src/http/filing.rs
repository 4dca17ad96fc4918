//! `/api/v1/retention/…` and `/api/v1/filings/…`: retention rules, the yearly filing, its status,
//! its documents and the case systems' completeness declarations.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Admins, Authorized, Declarers, Keepers, OptionalJson, RecordsReaders, Then};
use super::error::ApiError;
use crate::app::App;
use crate::auth::Role;
use crate::documents::Opened;

#[derive(Deserialize)]
pub struct RulesQuery {
    version: Option<i64>,
}

pub async fn get_rules(
    Then(_who, q): Then<RecordsReaders, web::Query<RulesQuery>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let rules = app.rules();
    let set = match q.version {
        Some(v) => rules
            .version(v)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no rule version {v}")))?,
        None => (*rules.current().await?).clone(),
    };
    let s = rules.settings();
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
    Then(who, body): Then<Admins, web::Json<RulesBody>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    crate::retention::validate(&body.rules).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let set = app.rules().put(&body.rules, &who).await?;
    Ok(HttpResponse::Ok().json(&*set))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReevaluateBody {
    #[serde(default)]
    dry_run: bool,
}

pub async fn reevaluate(
    Then(who, body): Then<Admins, OptionalJson<ReevaluateBody>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = body.0.map(|b| b.dry_run).unwrap_or(false);
    Ok(HttpResponse::Ok().json(app.rules().reevaluate(&who, dry_run).await?))
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
    Then(who, body): Then<Keepers, web::Json<FilingBody>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (filing, who, year) = (app.filing().clone(), who.0, body.year);
    let mut task = tokio::spawn(async move { filing.run(year, "manual", &who).await });
    let wait = std::time::Duration::from_millis(app.filing().settings().respond_within_ms);
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
    _who: Authorized<RecordsReaders>,
    path: web::Path<i64>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.filing().status(path.into_inner()).await?))
}

pub async fn put_expected(
    Then(who, body): Then<Declarers, web::Json<crate::filing::status::Expected>>,
    path: web::Path<i64>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let year = path.into_inner();
    let org = match (who.role, &body.social_code) {
        (Role::Submitter, Some(o)) if Some(o) != who.org.as_ref() => {
            return Err(ApiError::Forbidden(format!(
                "this token may declare for organisation {} only",
                who.org.as_deref().unwrap_or("-")
            )));
        }
        (Role::Submitter, _) => who.org.clone().unwrap_or_default(),
        (_, Some(o)) => o.clone(),
        (_, None) => {
            return Err(ApiError::BadRequest(
                "social_code: name the organisation whose cases are declared".into(),
            ));
        }
    };
    // Only a valid credit code goes into the audit trail and the declarations.
    if let Some(e) = crate::codes::uscc_problem(&org) {
        return Err(ApiError::BadRequest(format!("social_code: {e}")));
    }
    let this_year = chrono::Utc::now()
        .format("%Y")
        .to_string()
        .parse::<i64>()
        .unwrap_or(2026);
    if !(1990..=this_year + 1).contains(&year) {
        return Err(ApiError::BadRequest(format!(
            "year: {year} is outside 1990 to {}",
            this_year + 1
        )));
    }
    if let Some((t, n)) = body.counts.iter().find(|(_, n)| **n < 0) {
        return Err(ApiError::BadRequest(format!("counts.{t}: {n} is negative")));
    }
    let most = app.settings().limits.max_declared_keys;
    if body.cases.len() + body.counts.len() > most {
        return Err(ApiError::BadRequest(format!(
            "cases and counts: {} entries, more than the {most} one declaration may hold",
            body.cases.len() + body.counts.len()
        )));
    }
    // The same bounds as metadata.xml's: a declared key that no case can have is a mistake.
    let bad_code = |c: &str| c.trim().is_empty() || c.chars().count() > 36;
    if let Some((i, c)) = body.cases.iter().enumerate().find(|(_, c)| {
        bad_code(&c.task_code)
            || c.project_id.trim().is_empty()
            || c.project_id.chars().count() > 64
    }) {
        let field = if bad_code(&c.task_code) {
            "task_code (1–36 characters)"
        } else {
            "project_id (1–64 characters)"
        };
        return Err(ApiError::BadRequest(format!(
            "cases[{i}].{field} is empty or too long"
        )));
    }
    if body.counts.keys().any(|t| bad_code(t)) {
        return Err(ApiError::BadRequest(
            "counts: a task code is empty or longer than 36 characters".into(),
        ));
    }
    let (keys, counts) = app.filing().put_expected(year, &org, &body, &who).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"year": year, "social_code": org, "cases": keys, "task_codes": counts})))
}

/// A stored document (register, form, destruction register), streamed.
pub fn stream_document(opened: Option<Opened>, name: &str) -> Result<HttpResponse, ApiError> {
    let Opened { doc, size, stream } =
        opened.ok_or_else(|| ApiError::NotFound(format!("no document {name} (yet)")))?;
    // The registration form's HTML is the one to print and sign: served as a page, not as XML.
    let ct = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else if name.ends_with(".html") {
        "text/html; charset=utf-8"
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
    who: Authorized<RecordsReaders>,
    path: web::Path<(i64, String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (year, batch_id, name) = path.into_inner();
    let opened = app
        .filing()
        .document(year, &batch_id, &name, &who)
        .await
        .map_err(|e| match e {
            crate::filing::FilingError::NoBatch => {
                ApiError::NotFound(format!("no filing batch {batch_id} of {year}"))
            }
            e => e.into(),
        })?;
    stream_document(opened, &name)
}
