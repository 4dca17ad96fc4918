//! Signing in and out, and the session every page reads.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::templates::{page, render};
use crate::app::App;
use crate::auth::Principal;

pub const SESSION_COOKIE: &str = "guidang_session";
/// A session unused this long ends.
const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session ends this long after sign-in, used or not.
const MAX_MS: i64 = 12 * 60 * 60 * 1000;

/// A signed-in user: who, and the CSRF token their forms must carry.
pub struct Session {
    pub who: Principal,
    pub csrf: String,
    hash: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The OS generator; without it there is no safe session to give.
    getrandom::fill(&mut b).expect("the operating system's random generator");
    hex::encode(b)
}

fn cookie_value(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn secure(app: &App) -> &'static str {
    if app.settings().tls_cert_file.is_some() {
        "; Secure"
    } else {
        ""
    }
}

/// The session of this request, if it is valid now.
pub async fn current(req: &HttpRequest, app: &App) -> Option<Session> {
    let value = cookie_value(req)?;
    let h = hash(&value);
    let row = app.db().session(&h).await.ok().flatten()?;
    let now = now_ms();
    if now - row.seen_ms > IDLE_MS || now - row.created_ms > MAX_MS {
        let _ = app.db().delete_session(&h).await;
        return None;
    }
    // The token is looked up on every request: revoking it ends the session at once.
    let who = crate::auth::authenticate_id(app.db(), &row.token_id)
        .await
        .ok()
        .flatten()?;
    let _ = app.db().touch_session(&h, now).await;
    Some(Session {
        who,
        csrf: row.csrf,
        hash: h,
    })
}

/// The page's session, or the redirect to sign-in.
pub async fn required(req: &HttpRequest, app: &App) -> Result<Session, HttpResponse> {
    current(req, app).await.ok_or_else(|| {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .finish()
    })
}

/// Whether a submitted form carries this session's CSRF token.
pub fn csrf_ok(s: &Session, sent: &str) -> bool {
    // Both are hex of equal length when genuine; compare without early exit.
    s.csrf.len() == sent.len()
        && s.csrf
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub async fn login_form(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    if current(&req, &app).await.is_some() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish();
    }
    render("login.html", minijinja::context! { error => "" }, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(form: web::Form<LoginForm>, app: web::Data<Arc<App>>) -> HttpResponse {
    let token = form.token.trim();
    let who = match app.tokens().authenticate(token).await {
        Ok(Some(p))
            if matches!(
                p.role,
                crate::auth::Role::Archivist
                    | crate::auth::Role::Auditor
                    | crate::auth::Role::Admin
            ) =>
        {
            p
        }
        Ok(Some(_)) => {
            return page(
                actix_web::http::StatusCode::FORBIDDEN,
                "login.html",
                minijinja::context! { error => "报送系统和移交单位的令牌只能用于接口，不能登录控制台" },
                None,
            );
        }
        Ok(None) => {
            return page(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "login.html",
                minijinja::context! { error => "令牌无效、已撤销或已过期" },
                None,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "console sign-in");
            return page(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "login.html",
                minijinja::context! { error => "暂时无法登录，请稍后再试" },
                None,
            );
        }
    };
    let value = random_hex();
    if let Err(e) = app
        .db()
        .insert_session(&hash(&value), &who.id, &random_hex(), now_ms())
        .await
    {
        tracing::error!(error = %e, "console sign-in");
        return HttpResponse::ServiceUnavailable().finish();
    }
    let _ = app
        .db()
        .expire_sessions(now_ms() - IDLE_MS, now_ms() - MAX_MS)
        .await;
    app.evidence()
        .audit(&who, "console_sign_in", "-", "303")
        .await;
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                MAX_MS / 1000,
                secure(&app)
            ),
        ))
        .finish()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    if let Some(s) = current(&req, &app).await {
        if !csrf_ok(&s, &form.csrf) {
            return HttpResponse::Forbidden().body("CSRF token missing or wrong");
        }
        let _ = app.db().delete_session(&s.hash).await;
        app.evidence()
            .audit(&s.who, "console_sign_out", "-", "303")
            .await;
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish()
}
