//! Extractors for what every handler needs first: who calls (`Authorization: Bearer`), whether
//! their role may do this ([`Authorized`]), and for case routes the case itself, visible to them,
//! found or 404 ([`CaseOf`]), and not destroyed or 410 ([`ContentOf`]). A handler then states only
//! what is particular to it.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::db::cases::{CaseRow, CaseStatus};

/// A set of roles allowed on a route.
pub trait RoleSet: 'static {
    const ROLES: &'static [Role];
}

macro_rules! role_set {
    ($(#[$m:meta])* $name:ident = [$($r:ident),+]) => {
        $(#[$m])*
        pub struct $name;
        impl RoleSet for $name {
            const ROLES: &'static [Role] = &[$(Role::$r),+];
        }
    };
}

role_set!(
    /// Anyone with a token.
    AnyRole = [Submitter, Archivist, Auditor, Admin]
);
role_set!(
    /// Those who read cases: a submitter its own organisation's, archivists and auditors all.
    CaseReaders = [Submitter, Archivist, Auditor]
);
role_set!(
    /// Those who read whole packages and files.
    PackageReaders = [Archivist, Auditor]
);
role_set!(
    /// Those who push cases.
    Submitters = [Submitter, Archivist]
);
role_set!(
    /// Those who read filing, disposal and retention state.
    RecordsReaders = [Archivist, Auditor, Admin]
);
role_set!(
    /// Those who keep the records: file, hold, execute disposal.
    Keepers = [Archivist, Admin]
);
role_set!(Archivists = [Archivist]);
role_set!(
    /// Sending units delivering transfer volumes.
    Transferors = [Transferor]
);
role_set!(Admins = [Admin]);
role_set!(
    /// Those who check the evidence: the audit trail, reconciliation.
    Overseers = [Auditor, Admin]
);
role_set!(
    /// Those who declare which cases to expect in a year.
    Declarers = [Submitter, Archivist, Admin]
);

/// The caller, authenticated, with a role in `R` (401 without a valid token, 403 otherwise).
pub struct Authorized<R: RoleSet>(pub Principal, PhantomData<R>);

impl<R: RoleSet> std::ops::Deref for Authorized<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

fn app_of(req: &HttpRequest) -> Option<Arc<App>> {
    req.app_data::<web::Data<Arc<App>>>()
        .map(|d| d.get_ref().clone())
}

/// How a request says who it is: a bearer token (programs), or the console's session cookie
/// (a signed-in browser following a page's link).
enum Credential {
    Bearer(String),
    Session(HttpRequest),
    /// The console acting: the session cookie with its CSRF token in `X-CSRF-Token`.
    SessionWrite(HttpRequest, String),
    None,
}

fn credential(req: &HttpRequest) -> Credential {
    if let Some(t) = bearer(req) {
        return Credential::Bearer(t);
    }
    // The console's pages link to files, evidence and proofs: a session may read them. Only
    // safe methods: a cookie never changes anything here (SameSite=Strict besides).
    if matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) && req.headers().contains_key(actix_web::http::header::COOKIE)
    {
        return Credential::Session(req.clone());
    }
    // A write with the cookie only counts with the session's CSRF token beside it.
    if req.headers().contains_key(actix_web::http::header::COOKIE)
        && let Some(csrf) = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
    {
        return Credential::SessionWrite(req.clone(), csrf.to_string());
    }
    Credential::None
}

async fn authorize(
    app: Option<Arc<App>>,
    cred: Credential,
    roles: &[Role],
) -> Result<Principal, ApiError> {
    let Some(app) = app else {
        return Err(ApiError::Unauthorized);
    };
    let p = match cred {
        Credential::Bearer(token) => app
            .tokens()
            .authenticate(&token)
            .await?
            .ok_or(ApiError::Unauthorized)?,
        Credential::Session(req) => crate::console::signed_in(&req, &app)
            .await
            .ok_or(ApiError::Unauthorized)?,
        Credential::SessionWrite(req, csrf) => {
            crate::console::signed_in_for_write(&req, &app, &csrf)
                .await
                .ok_or(ApiError::Unauthorized)?
        }
        Credential::None => return Err(ApiError::Unauthorized),
    };
    if !roles.contains(&p.role) {
        return Err(ApiError::Forbidden(format!(
            "the {} role may not do this",
            p.role.as_str()
        )));
    }
    Ok(p)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

impl<R: RoleSet> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (app, token) = (app_of(req), credential(req));
        Box::pin(async move {
            Ok(Authorized(
                authorize(app, token, R::ROLES).await?,
                PhantomData,
            ))
        })
    }
}

/// The case named by the route's `{archive_id}`, as the caller (a role in `R`) may see it: 404
/// if it does not exist or is another organisation's. A destroyed case is still a tombstone here.
pub struct CaseOf<R: RoleSet> {
    pub who: Principal,
    pub case: CaseRow,
    _r: PhantomData<R>,
}

/// [`CaseOf`] whose content still exists: 410 once it was destroyed by disposal.
pub struct ContentOf<R: RoleSet> {
    pub who: Principal,
    pub case: CaseRow,
    _r: PhantomData<R>,
}

async fn find_case(
    app: Option<Arc<App>>,
    token: Credential,
    roles: &[Role],
    id: Option<String>,
) -> Result<(Principal, CaseRow), ApiError> {
    let who = authorize(app.clone(), token, roles).await?;
    let (Some(app), Some(id)) = (app, id) else {
        return Err(ApiError::NotFound("no such case".into()));
    };
    let case = app
        .cases()
        .case_for(&who, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case {id}")))?;
    Ok((who, case))
}

fn archive_id(req: &HttpRequest) -> Option<String> {
    req.match_info().get("archive_id").map(str::to_string)
}

impl<R: RoleSet> FromRequest for CaseOf<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (app, token, id) = (app_of(req), credential(req), archive_id(req));
        Box::pin(async move {
            let (who, case) = find_case(app, token, R::ROLES, id).await?;
            Ok(CaseOf {
                who,
                case,
                _r: PhantomData,
            })
        })
    }
}

impl<R: RoleSet> FromRequest for ContentOf<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (app, token, id) = (app_of(req), credential(req), archive_id(req));
        Box::pin(async move {
            let (who, case) = find_case(app, token, R::ROLES, id).await?;
            if case.status == CaseStatus::Disposed {
                return Err(ApiError::Gone(format!(
                    "the content of case {} was destroyed under disposal list {} at {}",
                    case.archive_id,
                    case.disposal_list.as_deref().unwrap_or("-"),
                    case.disposed_at.as_deref().unwrap_or("-")
                )));
            }
            Ok(ContentOf {
                who,
                case,
                _r: PhantomData,
            })
        })
    }
}

/// A JSON body that may be absent: an empty body is `None`; a body that is present must be
/// `application/json` (else 415) and parse (else 400). An action never falls back to its default
/// (a re-evaluation that is not a dry run, say) because a body it was sent failed to parse.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body
                .await
                .map_err(|e| ApiError::BadRequest(format!("the body: {e}")))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            if content_type.as_deref() != Some("application/json") {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "send the body as application/json, not {}",
                    content_type.as_deref().unwrap_or("(no Content-Type)")
                )));
            }
            serde_json::from_slice(&bytes)
                .map(|v| OptionalJson(Some(v)))
                .map_err(|e| ApiError::BadRequest(format!("the JSON body: {e}")))
        })
    }
}

/// The caller, authorized with a role in `R`, then the extractor `T` (a body): extractors of one
/// handler run side by side, and a body that fails to parse at once would otherwise answer 400
/// to a caller who may not act at all — it must learn 401 or 403 first.
pub struct Then<R: RoleSet, T>(pub Authorized<R>, pub T);

impl<R: RoleSet, T> FromRequest for Then<R, T>
where
    T: FromRequest + 'static,
    T::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, mut payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let who = Authorized::<R>::from_request(&req, &mut Payload::None).await?;
            let t = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Then(who, t))
        })
    }
}
