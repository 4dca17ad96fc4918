//! `/api/v1/transfers`: draft batches, decisions, what blocks a batch, approval.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::auth::{
    Admins, Archivists, Authorized, PackageReaders, RecordsReaders, Then, Transferors,
};
use super::error::ApiError;
use crate::app::App;
use crate::transfer::{DecisionRequest, DraftRequest};

pub async fn draft(
    Then(who, body): Then<Archivists, web::Json<DraftRequest>>,
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
    Then(who, body): Then<Archivists, web::Json<DecisionRequest>>,
    path: web::Path<String>,
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

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// `25G`, `4.7G`, `700M` or bytes (default 25G).
    volume_size: Option<String>,
}

pub async fn build(
    Then(who, body): Then<Archivists, Option<web::Json<BuildRequest>>>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let size = match body.and_then(|b| b.into_inner().volume_size) {
        Some(s) => Some(crate::transfer::build::parse_size(&s).map_err(ApiError::BadRequest)?),
        None => None,
    };
    let v = app.transfers().build(&path, size, &who).await?;
    Ok(HttpResponse::Accepted().json(v))
}

/// One built volume (`n`), or `volumes.xml` and its signatures, streamed.
pub async fn volume(
    _who: Authorized<PackageReaders>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (id, which) = path.into_inner();
    let name = match which.parse::<usize>() {
        Ok(n) if n >= 1 => format!("{}.zip", crate::transfer::volumes::volume_name(&id, n)),
        _ if matches!(
            which.as_str(),
            "volumes.xml"
                | "volumes.xml.signature.json"
                | "volumes.xml.signature-sm2.json"
                | "registration.xml"
                | "registration.html"
        ) =>
        {
            which.clone()
        }
        _ => {
            return Err(ApiError::NotFound(format!(
                "transfer {id} has no volume {which:?}"
            )));
        }
    };
    let (size, stream) = app.transfers().object(&id, &name).await?;
    use futures_util::TryStreamExt;
    Ok(HttpResponse::Ok()
        .content_type(if name.ends_with(".zip") {
            "application/zip"
        } else if name.ends_with(".html") {
            "text/html; charset=utf-8"
        } else if name.ends_with(".xml") {
            "application/xml"
        } else {
            "application/json"
        })
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .no_chunking(size)
        .streaming(stream.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedQuery {
    archival_code: Option<String>,
    transfer_id: Option<String>,
    limit: Option<i64>,
}

/// At the archive authority: the cases received, by archival code (`*` at the end: a prefix).
pub async fn received(
    Then(_who, q): Then<RecordsReaders, web::Query<ReceivedQuery>>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let items = app
        .transfers()
        .received(
            q.archival_code.as_deref().filter(|s| !s.is_empty()),
            q.transfer_id.as_deref().filter(|s| !s.is_empty()),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn send(
    who: Authorized<Archivists>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(app.transfers().send(&path, &who).await?))
}

/// `HEAD /api/v1/incoming/{transfer}/{file}`: the bytes this archive holds of the file.
pub async fn incoming_head(
    who: Authorized<Transferors>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (id, file) = path.into_inner();
    let (offset, complete) = app.transfers().incoming_offset(&who, &id, &file)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Complete", complete.to_string()))
        .finish())
}

/// `PUT /api/v1/incoming/{transfer}/{file}` with `Content-Range: bytes a-b/total`.
pub async fn incoming_put(
    req: actix_web::HttpRequest,
    Then(who, body): Then<Transferors, web::Payload>,
    path: web::Path<(String, String)>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    let (id, file) = path.into_inner();
    let range = req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| {
            let (r, total) = v.split_once('/')?;
            let (a, _) = r.split_once('-')?;
            Some((a.parse::<u64>().ok()?, total.parse::<u64>().ok()?))
        });
    let (start, total) = match range {
        Some(r) => r,
        None => {
            let len = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "send Content-Range: bytes START-END/TOTAL (or the whole file with Content-Length)".into(),
                    )
                })?;
            (0, len)
        }
    };
    let (offset, took) = app
        .transfers()
        .incoming_append(&who, &id, &file, start, total, body)
        .await?;
    let mut r = if took {
        HttpResponse::NoContent()
    } else {
        HttpResponse::Conflict()
    };
    Ok(r.insert_header(("Upload-Offset", offset.to_string()))
        .finish())
}

/// `POST /api/v1/incoming/{transfer}/complete`: receive what arrived; the signed receipt.
pub async fn incoming_complete(
    who: Authorized<Transferors>,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(app.transfers().incoming_complete(&who, &path).await?))
}
