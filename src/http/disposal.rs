//! `/api/v1/disposal/…` and `/api/v1/cases/{id}/holds`: due cases, disposal lists (propose,
//! decide, execute), their destruction registers, and holds.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Admins, Archivists, Authorized, CaseOf, Keepers, RecordsReaders, Then};
use super::error::ApiError;
use super::filing::stream_document;
use crate::app::App;
use crate::disposal::Proposal;

#[derive(Deserialize)]
pub struct Page {
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn due(
    Then(_who, q): Then<RecordsReaders, web::Query<Page>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (page, per_page) = super::paging(q.page, q.per_page, 100, 1000)?;
    Ok(HttpResponse::Ok().json(app.disposal().due(page, per_page).await?))
}

pub async fn lists(
    _who: Authorized<RecordsReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.disposal().lists().await?))
}

pub async fn propose(
    Then(who, body): Then<Archivists, web::Json<Proposal>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let l = app.disposal().propose(&body, &who).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/disposal/lists/{}", l.list.list_id),
        ))
        .json(l))
}

pub async fn show(
    _who: Authorized<RecordsReaders>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    app.disposal()
        .list(&id)
        .await?
        .map(|l| HttpResponse::Ok().json(l))
        .ok_or_else(|| ApiError::NotFound(format!("no disposal list {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    approve: bool,
    #[serde(default)]
    note: String,
}

pub async fn decide(
    Then(who, body): Then<Admins, web::Json<Decision>>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let l = app
        .disposal()
        .decide(&path, body.approve, &body.note, &who)
        .await?;
    Ok(HttpResponse::Ok().json(l))
}

pub async fn execute(
    who: Authorized<Keepers>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.disposal().execute(&path, &who).await?))
}

pub async fn document(
    who: Authorized<RecordsReaders>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let opened = app.disposal().document(&id, &name, &who).await?;
    stream_document(opened, &name)
}

pub async fn holds(
    c: CaseOf<RecordsReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let items = app.disposal().holds_of(&c.case.archive_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

pub async fn place_hold(
    Then(who, body): Then<Keepers, web::Json<Reason>>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let h = app.disposal().place_hold(&path, &body.reason, &who).await?;
    Ok(HttpResponse::Created().json(h))
}

pub async fn release_hold(
    Then(who, body): Then<Keepers, web::Json<Reason>>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (id, hold) = path.into_inner();
    let disposal = app.disposal();
    disposal
        .release_hold(&id, &hold, &body.reason, &who)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"items": disposal.holds_of(&id).await?})))
}
