//! `POST /api/v1/cases/{id}/digitised`: scans of a case's paper originals, as a new package version.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::{Archivists, Then};
use super::error::ApiError;
use crate::app::App;

pub async fn add(
    req: HttpRequest,
    Then(who, body): Then<Archivists, web::Payload>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let limit = app.settings().limits.max_body_bytes;
    super::cases::refuse_declared_over(&req, limit)?;
    let added = app.digitised().add_body(&id, body, &who).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!(
                "/api/v1/cases/{id}/package?version={}",
                added.version.version
            ),
        ))
        .json(added))
}
