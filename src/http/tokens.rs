//! `/api/v1/tokens`: an administrator lists tokens and revokes one.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::auth::{Admins, Authorized};
use super::error::ApiError;
use crate::app::App;

pub async fn list(
    _who: Authorized<Admins>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "tokens": app.tokens().list().await? })))
}

pub async fn revoke(
    who: Authorized<Admins>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if app.tokens().revoke(&id, &who).await? {
        Ok(HttpResponse::Ok().json(json!({"token_id": id, "revoked": true})))
    } else {
        Err(ApiError::NotFound("no such live token".into()))
    }
}
