//! `/api/v1/log`: checkpoints and proofs of the transparency log (CONTRACT.md §5).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::auth::{AnyRole, Authorized, CaseOf, CaseReaders, Overseers, Then};
use super::error::ApiError;
use crate::app::App;

pub async fn checkpoint(
    _who: Authorized<AnyRole>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let cp = app.evidence().log().publish().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(cp.note))
}

pub async fn proof(
    c: CaseOf<CaseReaders>,
    q: web::Query<super::cases::VersionQuery>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let id = &c.case.archive_id;
    let v = app.cases().version(&c.case, q.version).await?;
    let p = app
        .evidence()
        .log()
        .proof_for_version(id, &v.tagmanifest_sha256)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} has no log entry")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(p.format()))
}

#[derive(Deserialize)]
pub struct Range {
    from: u64,
    to: u64,
}

pub async fn consistency(
    Then(_who, q): Then<AnyRole, web::Query<Range>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let log = app.evidence().log();
    let latest = log.publish().await?;
    if q.from == 0 || q.from > q.to || q.to > latest.size {
        return Err(ApiError::BadRequest(format!(
            "need 0 < from <= to <= {} (the latest checkpoint's size)",
            latest.size
        )));
    }
    let hashes = log.consistency(q.from, q.to).await?;
    let body: String = hashes
        .iter()
        .map(|h| format!("{}\n", B64.encode(h)))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body))
}

#[derive(Deserialize)]
pub struct TrailQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
}

/// The audit trail, newest first, with the result of recomputing its hash chain.
pub async fn trail(
    Then(_who, q): Then<Overseers, web::Query<TrailQuery>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let f = crate::evidence::trail::Filter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        since: q.since,
        until: q.until,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let items = crate::evidence::trail::list(app.db(), &f).await?;
    let chain = match crate::evidence::trail::verify_chain(app.db()).await? {
        Ok(rows) => serde_json::json!({"intact": true, "rows": rows}),
        Err((seq, why)) => serde_json::json!({"intact": false, "broken_at": seq, "why": why}),
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "chain": chain})))
}

/// Runs the database-against-log reconciliation now.
pub async fn reconcile(
    who: Authorized<Overseers>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let findings = app.fixity().reconcile_for(&who).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"consistent": findings.is_empty(), "findings": findings})))
}
