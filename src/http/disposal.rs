//! `/api/v1/disposal/…` and `/api/v1/cases/{id}/holds`: due cases, disposal lists (propose,
//! decide, execute), their destruction registers, and holds.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::auth::Auth;
use super::error::ApiError;
use super::filing::{actor, stream_document};
use crate::archive::Archive;
use crate::auth::Role;
use crate::disposal;

const READERS: &[Role] = &[Role::Archivist, Role::Auditor, Role::Admin];
const KEEPERS: &[Role] = &[Role::Archivist, Role::Admin];

#[derive(Deserialize)]
pub struct Page {
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn due(
    auth: Auth,
    q: web::Query<Page>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    let page = q.page.unwrap_or(1).max(1);
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    Ok(HttpResponse::Ok().json(disposal::due(&archive, page, per_page).await?))
}

pub async fn lists(auth: Auth, archive: web::Data<Arc<Archive>>) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    Ok(HttpResponse::Ok().json(disposal::lists(&archive).await?))
}

pub async fn propose(
    auth: Auth,
    body: web::Json<disposal::Proposal>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Archivist])?;
    let l = disposal::propose(&archive, &body, &actor(caller)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!(
                "/api/v1/disposal/lists/{}",
                l["list_id"].as_str().unwrap_or("")
            ),
        ))
        .json(l))
}

pub async fn show(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    let id = path.into_inner();
    disposal::list(&archive, &id)
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
    auth: Auth,
    path: web::Path<String>,
    body: web::Json<Decision>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(&[Role::Admin])?;
    let l = disposal::decide(&archive, &path, body.approve, &body.note, &actor(caller)).await?;
    Ok(HttpResponse::Ok().json(l))
}

pub async fn execute(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(KEEPERS)?;
    Ok(HttpResponse::Ok().json(disposal::execute(&archive, &path, &actor(caller)).await?))
}

pub async fn document(
    auth: Auth,
    path: web::Path<(String, String)>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(READERS)?;
    let (id, name) = path.into_inner();
    let l = disposal::list(&archive, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no disposal list {id}")))?;
    archive
        .audit(
            &caller.token_id,
            caller.role.as_str(),
            "read_destruction_register",
            &id,
            &name,
        )
        .await;
    stream_document(&archive, l.get("documents"), &name).await
}

pub async fn holds(
    auth: Auth,
    path: web::Path<String>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    auth.require(READERS)?;
    let id = path.into_inner();
    archive
        .db
        .case(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case {id}")))?;
    Ok(HttpResponse::Ok().json(json!({"items": disposal::holds_of(&archive.db, &id).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

pub async fn place_hold(
    auth: Auth,
    path: web::Path<String>,
    body: web::Json<Reason>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(KEEPERS)?;
    let h = disposal::place_hold(&archive, &path, &body.reason, &actor(caller)).await?;
    Ok(HttpResponse::Created().json(h))
}

pub async fn release_hold(
    auth: Auth,
    path: web::Path<(String, String)>,
    body: web::Json<Reason>,
    archive: web::Data<Arc<Archive>>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(KEEPERS)?;
    let (id, hold) = path.into_inner();
    disposal::release_hold(&archive, &id, &hold, &body.reason, &actor(caller)).await?;
    Ok(HttpResponse::Ok().json(json!({"items": disposal::holds_of(&archive.db, &id).await?})))
}
