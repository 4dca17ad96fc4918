//! The one place where core errors become HTTP responses (CONTRACT.md §3 error body).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::archive::IngestError;
use crate::problem::{Code, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Ingest(IngestError),
    #[error("{0}")]
    Unavailable(String),
    /// 409 with a stable `error` word (`filing_running`, `wrong_state`).
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{0}")]
    Gone(String),
    /// 422 with problems that are not about a submission (`problems` is the list as given).
    #[error("{1}")]
    Unprocessable(&'static str, String, serde_json::Value),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The `error` field of the body: a short stable word for logs and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) | ApiError::Ingest(IngestError::Forbidden(_)) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) | ApiError::Ingest(IngestError::Interrupted(_)) => {
                "bad_request"
            }
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooLarge(_) | ApiError::Ingest(IngestError::TooLarge(_)) => "too_large",
            ApiError::Ingest(IngestError::Unreadable(_)) => "not_a_zip",
            ApiError::Ingest(IngestError::Rejected(_)) => "rejected",
            ApiError::Ingest(IngestError::Conflict { .. }) => "case_exists",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Conflict(c, _) | ApiError::Unprocessable(c, _, _) => c,
            ApiError::Gone(_) => "gone",
            ApiError::Ingest(IngestError::Internal(_)) | ApiError::Internal(_) => "internal",
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge(l) => ApiError::TooLarge(l),
            IngestError::Interrupted(m) => {
                ApiError::BadRequest(format!("the upload was interrupted: {m}"))
            }
            e => ApiError::Ingest(e),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
impl From<crate::pipeline::store::StoreError> for ApiError {
    fn from(e: crate::pipeline::store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Ingest(IngestError::Forbidden(_)) => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Ingest(IngestError::Unreadable(_)) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge(_) | ApiError::Ingest(IngestError::TooLarge(_)) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Ingest(IngestError::Interrupted(_)) => StatusCode::BAD_REQUEST,
            ApiError::Ingest(IngestError::Rejected(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Ingest(IngestError::Conflict { .. }) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Ingest(IngestError::Internal(_)) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (error, message, problems, extra): (&str, String, Vec<Problem>, serde_json::Value) =
            match self {
                ApiError::Unauthorized => (
                    "unauthorized",
                    "send Authorization: Bearer TOKEN with a valid token".into(),
                    vec![],
                    json!({}),
                ),
                ApiError::Forbidden(m) => ("forbidden", m.clone(), vec![], json!({})),
                ApiError::Ingest(e @ (IngestError::TooLarge(_) | IngestError::Interrupted(_))) => {
                    ("bad_request", e.to_string(), vec![], json!({}))
                }
                ApiError::NotFound(m) => ("not_found", m.clone(), vec![], json!({})),
                ApiError::BadRequest(m) => ("bad_request", m.clone(), vec![], json!({})),
                ApiError::UnsupportedMediaType(m) => {
                    ("unsupported_media_type", m.clone(), vec![], json!({}))
                }
                ApiError::TooLarge(_) => (
                    "too_large",
                    self.to_string(),
                    vec![Problem::new(Code::ZipLimits, self.to_string())],
                    json!({}),
                ),
                ApiError::Ingest(IngestError::Unreadable(m)) => (
                    "not_a_zip",
                    "the body is not a readable ZIP submission".into(),
                    vec![Problem::new(Code::NotAZip, m.clone())],
                    json!({}),
                ),
                ApiError::Ingest(IngestError::Rejected(p)) => (
                    "rejected",
                    format!(
                        "the submission was rejected with {} problem(s); nothing was archived",
                        p.errors.len()
                    ),
                    p.errors.clone(),
                    json!({"warnings": p.warnings}),
                ),
                ApiError::Ingest(e @ IngestError::Conflict { archive_id, .. }) => (
                    "case_exists",
                    e.to_string(),
                    vec![Problem::field(
                        Code::CaseExists,
                        "project_id",
                        e.to_string(),
                    )],
                    json!({"archive_id": archive_id}),
                ),
                ApiError::Ingest(IngestError::Forbidden(m)) => {
                    ("forbidden", m.clone(), vec![], json!({}))
                }
                ApiError::Unavailable(m) => ("unavailable", m.clone(), vec![], json!({})),
                ApiError::Conflict(c, m) | ApiError::Unprocessable(c, m, _) => {
                    (c, m.clone(), vec![], json!({}))
                }
                ApiError::Gone(m) => ("gone", m.clone(), vec![], json!({})),
                ApiError::Ingest(IngestError::Internal(m)) | ApiError::Internal(m) => {
                    tracing::error!(error = %m, "internal error");
                    (
                        "internal",
                        "internal error; see the server log".into(),
                        vec![],
                        json!({}),
                    )
                }
            };
        let mut body = json!({"error": error, "message": message, "problems": problems});
        if let ApiError::Unprocessable(_, _, p) = self {
            body["problems"] = p.clone();
        }
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let mut res = HttpResponse::build(self.status_code());
        if matches!(
            self,
            ApiError::TooLarge(_) | ApiError::Ingest(IngestError::TooLarge(_))
        ) {
            // The rest of the body is not read: close so the client stops sending.
            res.force_close();
        }
        res.json(body)
    }
}

impl From<crate::filing::FilingError> for ApiError {
    fn from(e: crate::filing::FilingError) -> Self {
        use crate::filing::FilingError as F;
        match e {
            F::Busy(_) => ApiError::Conflict("filing_running", e.to_string()),
            F::LeaseLost => ApiError::Conflict("filing_running", e.to_string()),
            F::Nothing(_) => ApiError::Conflict("nothing_to_file", e.to_string()),
            F::NotYet(_) => ApiError::Conflict("year_not_over", e.to_string()),
            F::Db(d) => d.into(),
            F::Io(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::retention::disposal::DisposalError> for ApiError {
    fn from(e: crate::retention::disposal::DisposalError) -> Self {
        use crate::retention::disposal::DisposalError as D;
        match e {
            D::Db(d) => d.into(),
            D::Store(m) => ApiError::Internal(m),
            D::NoCase | D::NoList | D::NoHold => ApiError::NotFound(e.to_string()),
            D::Invalid(m) => ApiError::BadRequest(m),
            D::State(m) => ApiError::Conflict("wrong_state", m),
            D::FourEyes(m) => ApiError::Forbidden(m),
            D::Refused(list) => ApiError::Unprocessable(
                "not_disposable",
                format!("{} case(s) cannot be put on a disposal list; nothing was proposed", list.len()),
                serde_json::Value::Array(
                    list.into_iter()
                        .map(|(id, why)| json!({"code": "not_disposable", "archive_id": id, "message": why}))
                        .collect(),
                ),
            ),
        }
    }
}
