//! The one place where core errors become HTTP responses (CONTRACT.md §3 error body).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::ingest::IngestError;
use crate::problem::{Code, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// 403 `forbidden` because the caller proposed or prepared what it would decide.
    #[error("{0}")]
    FourEyes(String),
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
    /// Anything the caller cannot fix; the cause goes to the server log, not to the client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// An error the caller cannot fix (500), unless it is a database lock or connection wait
    /// that ran out: that is 503 with Retry-After, since the same request will succeed later.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
        let e = e.into();
        if crate::db::busy_in(e.as_ref()) {
            tracing::warn!(error = %e, "database busy: answered 503");
            return ApiError::Unavailable(BUSY_DB.into());
        }
        if crate::db::unstorable_text_in(e.as_ref()) {
            return ApiError::BadRequest(
                "a text in the request holds a NUL character or one the database cannot store"
                    .into(),
            );
        }
        ApiError::Internal(e)
    }
}

const BUSY_DB: &str = "the database is busy; try again after Retry-After seconds";

/// What a 503 asks the client to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Status, `error` word, message, problems and extra body fields of an error: the one match.
struct Parts {
    status: StatusCode,
    error: &'static str,
    message: String,
    problems: serde_json::Value,
    extra: serde_json::Value,
}

impl ApiError {
    /// The `error` field of the body: a short stable word for logs and the audit trail.
    pub fn code(&self) -> &'static str {
        self.parts().error
    }

    fn parts(&self) -> Parts {
        use StatusCode as S;
        let p = |status, error, message: String| Parts {
            status,
            error,
            message,
            problems: json!([]),
            extra: json!({}),
        };
        let problems = |v: Vec<Problem>| serde_json::to_value(v).unwrap_or_else(|_| json!([]));
        match self {
            ApiError::Unauthorized => p(
                S::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer TOKEN with a valid token".into(),
            ),
            ApiError::Forbidden(m)
            | ApiError::FourEyes(m)
            | ApiError::Ingest(IngestError::Forbidden(m)) => {
                p(S::FORBIDDEN, "forbidden", m.clone())
            }
            ApiError::NotFound(m) => p(S::NOT_FOUND, "not_found", m.clone()),
            ApiError::BadRequest(m) => p(S::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::Ingest(e @ IngestError::Interrupted(_)) => {
                p(S::BAD_REQUEST, "bad_request", e.to_string())
            }
            ApiError::Ingest(e @ IngestError::Idle(_)) => {
                p(S::REQUEST_TIMEOUT, "request_timeout", e.to_string())
            }
            ApiError::Ingest(IngestError::Busy(m)) => p(S::SERVICE_UNAVAILABLE, "busy", m.clone()),
            ApiError::UnsupportedMediaType(m) => p(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
            ),
            ApiError::TooLarge(_) | ApiError::Ingest(IngestError::TooLarge(_)) => Parts {
                problems: problems(vec![Problem::new(Code::ZipLimits, self.to_string())]),
                ..p(S::PAYLOAD_TOO_LARGE, "too_large", self.to_string())
            },
            ApiError::Ingest(IngestError::Unreadable(m)) => Parts {
                problems: problems(vec![Problem::new(Code::NotAZip, m.clone())]),
                ..p(
                    S::BAD_REQUEST,
                    "not_a_zip",
                    "the body is not a readable ZIP submission".into(),
                )
            },
            ApiError::Ingest(IngestError::Rejected(r)) => Parts {
                problems: problems(r.errors.clone()),
                extra: json!({"warnings": r.warnings}),
                ..p(
                    S::UNPROCESSABLE_ENTITY,
                    "rejected",
                    format!(
                        "the submission was rejected with {} problem(s); nothing was archived",
                        r.errors.len()
                    ),
                )
            },
            ApiError::Ingest(e @ IngestError::Conflict { archive_id, .. }) => Parts {
                problems: problems(vec![Problem::field(
                    Code::CaseExists,
                    "project_id",
                    e.to_string(),
                )]),
                extra: json!({"archive_id": archive_id}),
                ..p(S::CONFLICT, "case_exists", e.to_string())
            },
            ApiError::Unavailable(m) => p(S::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            ApiError::Conflict(c, m) => p(S::CONFLICT, c, m.clone()),
            ApiError::Gone(m) => p(S::GONE, "gone", m.clone()),
            ApiError::Unprocessable(c, m, list) => Parts {
                problems: list.clone(),
                ..p(S::UNPROCESSABLE_ENTITY, c, m.clone())
            },
            ApiError::Ingest(IngestError::Internal(_)) | ApiError::Internal(_) => p(
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log".into(),
            ),
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
            IngestError::Internal(e) => ApiError::internal(e),
            e => ApiError::Ingest(e),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::internal(e)
    }
}
impl From<crate::storage::StoreError> for ApiError {
    fn from(e: crate::storage::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().status
    }

    fn error_response(&self) -> HttpResponse {
        let parts = self.parts();
        if parts.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, source = ?std::error::Error::source(self), "internal error");
        }
        let mut body =
            json!({"error": parts.error, "message": parts.message, "problems": parts.problems});
        if let (Some(b), Some(e)) = (body.as_object_mut(), parts.extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let mut zh = chinese(&body);
        if matches!(self, ApiError::FourEyes(_)) {
            zh["message"] =
                json!("四眼原则：提出或起草的人不能审批自己的清单或批次，须由另一位管理员审批");
        }
        let mut res = HttpResponse::build(parts.status);
        if parts.status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((
                actix_web::http::header::RETRY_AFTER,
                RETRY_AFTER_SECS.to_string(),
            ));
        }
        if matches!(
            parts.status,
            StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::SERVICE_UNAVAILABLE
        ) {
            // The rest of the body is not read: close so the client stops sending.
            res.force_close();
        }
        let mut res = res.json(body);
        res.extensions_mut().insert(Chinese(zh));
        res
    }
}

/// The error body in Chinese, kept beside the English one; [`localize`] sends it to clients that
/// prefer `zh`.
struct Chinese(serde_json::Value);

/// The `error` word's meaning in Chinese.
fn zh_error(error: &str) -> &'static str {
    match error {
        "unauthorized" => "缺少令牌或令牌无效：请以 Authorization: Bearer 令牌 发送有效令牌",
        "forbidden" => "此令牌的角色无权执行该操作",
        "not_found" => "未找到所请求的对象",
        "bad_request" => "请求有误：参数或请求体格式不正确",
        "request_timeout" => "请求体传输中断或超时",
        "busy" | "unavailable" => "服务繁忙，请在 Retry-After 秒后重试",
        "unsupported_media_type" => "请求体的 Content-Type 不正确",
        "too_large" => "请求体超过大小限制",
        "not_a_zip" => "请求体不是可读取的 ZIP 提交包",
        "rejected" => "提交被拒收，未归档任何内容；问题逐条列出",
        "case_exists" => "该办件已以不同内容归档",
        "gone" => "该办件的内容已依法销毁",
        "filing_running" => "该年度的归档正在进行",
        "nothing_to_file" => "该年度没有待归档的办件",
        "year_not_over" => "该年度尚未结束，不能归档",
        "wrong_state" => "当前状态不允许该操作",
        "version_conflict" => "档案包版本冲突",
        "not_disposable" => "清单中有不能销毁的办件；未提交任何清单",
        "not_ready" => "移交批次尚未就绪；阻碍逐条列出",
        "year_not_filed" => "该年度尚未完成归档",
        "internal" => "服务器内部错误；详见服务器日志",
        _ => "请求未能完成",
    }
}

fn chinese(body: &serde_json::Value) -> serde_json::Value {
    let mut zh = body.clone();
    let error = body["error"].as_str().unwrap_or("");
    zh["message"] = json!(zh_error(error));
    zh["message_en"] = body["message"].clone();
    for key in ["problems", "warnings"] {
        if let Some(list) = zh.get_mut(key).and_then(|v| v.as_array_mut()) {
            for p in list {
                let code = p["code"].as_str().unwrap_or("");
                let name = Code::parse(code).map(Code::zh).unwrap_or(match code {
                    "not_disposable" => "不能销毁",
                    "excluded" => "不在移交范围",
                    _ => "不符合要求",
                });
                let about = p["path"]
                    .as_str()
                    .or(p["field"].as_str())
                    .or(p["archive_id"].as_str())
                    .map(str::to_owned);
                p["message_en"] = p["message"].clone();
                p["message"] = json!(match about {
                    Some(a) => format!("{name}（{a}）"),
                    None => name.to_string(),
                });
            }
        }
    }
    zh
}

/// Whether the client's `Accept-Language` puts Chinese first (by its q-values).
pub fn prefers_zh(headers: &actix_web::http::header::HeaderMap) -> bool {
    let Some(v) = headers
        .get(actix_web::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut best: Option<(f32, bool)> = None;
    for part in v.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        if tag.is_empty() || tag == "*" {
            continue;
        }
        let zh = tag == "zh" || tag.starts_with("zh-");
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, zh));
        }
    }
    best.is_some_and(|(q, zh)| zh && q > 0.0)
}

/// Sends error bodies in Chinese to clients that prefer it (`Accept-Language: zh…`): `message`
/// and each problem's `message` in Chinese, the English beside them as `message_en`; codes and
/// every other field unchanged.
pub async fn localize(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let zh = prefers_zh(req.headers());
    let res = next.call(req).await?.map_into_boxed_body();
    let body = if zh {
        res.response()
            .extensions()
            .get::<Chinese>()
            .map(|c| c.0.to_string())
    } else {
        None
    };
    Ok(match body {
        None => res,
        Some(b) => res.map_body(|head, _| {
            head.headers.insert(
                actix_web::http::header::CONTENT_LANGUAGE,
                actix_web::http::header::HeaderValue::from_static("zh-CN"),
            );
            actix_web::body::BoxBody::new(b)
        }),
    })
}

/// The body of a route that does not exist, in the same shape as every other error.
pub async fn no_such_route() -> HttpResponse {
    ApiError::NotFound("no such route".into()).error_response()
}

impl From<crate::filing::FilingError> for ApiError {
    fn from(e: crate::filing::FilingError) -> Self {
        use crate::filing::FilingError as F;
        match e {
            F::Busy(_) => ApiError::Conflict("filing_running", e.to_string()),
            F::LeaseLost => ApiError::Conflict("filing_running", e.to_string()),
            F::Nothing(_) => ApiError::Conflict("nothing_to_file", e.to_string()),
            F::NotYet(_) => ApiError::Conflict("year_not_over", e.to_string()),
            F::NoBatch => ApiError::NotFound(e.to_string()),
            e @ (F::Db(_) | F::Io(_) | F::Store(_) | F::Document(_) | F::Inconsistent(_)) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<crate::disposal::DisposalError> for ApiError {
    fn from(e: crate::disposal::DisposalError) -> Self {
        use crate::disposal::DisposalError as D;
        match e {
            e @ (D::Db(_) | D::Store(_) | D::Document(_) | D::Io(_)) => ApiError::internal(e),
            D::NoCase | D::NoList | D::NoHold => ApiError::NotFound(e.to_string()),
            D::Invalid(m) => ApiError::BadRequest(m),
            D::State(m) => ApiError::Conflict("wrong_state", m),
            D::FourEyes(m) => ApiError::FourEyes(m),
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

impl From<crate::versions::VersionError> for ApiError {
    fn from(e: crate::versions::VersionError) -> Self {
        use crate::versions::VersionError as V;
        match e {
            V::NotFound(_) => ApiError::NotFound(e.to_string()),
            V::Disposed(_) => ApiError::Gone(e.to_string()),
            V::Conflict(m) => ApiError::Conflict("version_conflict", m),
            e @ (V::Db(_) | V::Store(_) | V::Io(_)) => ApiError::internal(e),
        }
    }
}

impl From<crate::digitised::DigitisedError> for ApiError {
    fn from(e: crate::digitised::DigitisedError) -> Self {
        use crate::digitised::DigitisedError as D;
        use crate::pipeline::receive::ReceiveError as R;
        match e {
            D::Rejected(p) => ApiError::Unprocessable(
                "rejected",
                format!(
                    "the scans were refused with {} problem(s); the case's package is unchanged",
                    p.errors.len()
                ),
                serde_json::to_value(&p.errors).unwrap_or_else(|_| json!([])),
            ),
            D::Unreadable(m) => ApiError::Ingest(IngestError::Unreadable(m)),
            D::Version(v) => v.into(),
            D::Receive(R::TooLarge(l)) => ApiError::TooLarge(l),
            D::Receive(R::Idle(s)) => ApiError::Ingest(IngestError::Idle(s)),
            D::Receive(R::Interrupted(m)) => {
                ApiError::BadRequest(format!("the upload was interrupted: {m}"))
            }
            e @ (D::Receive(R::Io(_)) | D::Io(_)) => ApiError::internal(e),
        }
    }
}

impl From<crate::transfer::TransferError> for ApiError {
    fn from(e: crate::transfer::TransferError) -> Self {
        use crate::transfer::TransferError as T;
        match e {
            T::NotFound(_) => ApiError::NotFound(e.to_string()),
            T::Invalid(m) => ApiError::BadRequest(m),
            T::Refused {
                code,
                message,
                problems,
            } => ApiError::Unprocessable(code, message, serde_json::Value::Array(problems)),
            T::State(m) => ApiError::Conflict("wrong_state", m),
            T::FourEyes(m) => ApiError::FourEyes(m),
            T::NotReady(ref blockers) => ApiError::Unprocessable(
                "not_ready",
                e.to_string(),
                serde_json::to_value(blockers).unwrap_or_else(|_| json!([])),
            ),
            T::Version(v) => v.into(),
            T::Db(d) => ApiError::internal(d),
        }
    }
}
