//! `/api/v1/tokens`: an administrator lists tokens and revokes one.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::auth::{Admins, Authorized, Then};
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    role: String,
    org: Option<String>,
    name: Option<String>,
    /// YYYY-MM-DD (its start, UTC) or an RFC 3339 time.
    expires_at: Option<String>,
    #[serde(default)]
    content: bool,
}

/// Creates a token (as `guidang token create` does) and returns it in clear, this once.
pub async fn create(
    Then(who, body): Then<Admins, web::Json<NewToken>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    use crate::auth::TokenError as T;
    let b = body.into_inner();
    let (token, row) = app
        .tokens()
        .create(
            &b.role,
            b.org.as_deref(),
            b.name.as_deref(),
            b.expires_at,
            b.content,
            &who,
        )
        .await
        .map_err(|e| match e {
            e @ (T::Role(_) | T::OrgRequired | T::Org(_) | T::Expiry(_) | T::Content(_)) => {
                ApiError::BadRequest(e.to_string().replace("--", ""))
            }
            e => ApiError::internal(e),
        })?;
    let mut v = serde_json::to_value(&row).map_err(ApiError::internal)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("token".into(), json!(token));
    }
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(v))
}
