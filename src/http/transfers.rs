//! `/api/v1/transfers`: draft batches, decisions, what blocks a batch, approval.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::auth::{Admins, Archivists, Authorized, RecordsReaders};
use super::error::ApiError;
use crate::app::App;
use crate::transfer::{DecisionRequest, DraftRequest};

pub async fn draft(
    who: Authorized<Archivists>,
    body: web::Json<DraftRequest>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let v = app.transfers().draft(&body, &who).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/transfers/{}", v.batch.transfer_id),
        ))
        .json(v))
}

pub async fn list(
    _who: Authorized<RecordsReaders>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let items = app.transfers().list().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn show(
    _who: Authorized<RecordsReaders>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.transfers().view(&path).await?))
}

pub async fn decide(
    who: Authorized<Archivists>,
    path: web::Path<String>,
    body: web::Json<DecisionRequest>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.transfers().decide(&path, &body, &who).await?))
}

pub async fn approve(
    who: Authorized<Admins>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.transfers().approve(&path, &who).await?))
}
