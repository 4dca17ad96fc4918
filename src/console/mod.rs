//! The browser console (简体中文): server-rendered pages for archivists, auditors and
//! administrators, over the same services and permissions as `/api/v1` — a page never does what
//! the API would refuse the same token. Templates and assets are compiled into the binary.
//!
//! Sign-in exchanges a token for a server-side session: the cookie holds a random value whose
//! SHA-256 finds the session; it is HttpOnly, SameSite=Strict, Secure when served over HTTPS, and
//! ends after `console.idle_minutes` without use, `console.max_hours` after sign-in, at sign-out,
//! or when its token is revoked or expires. Every form carries the session's CSRF token. Pages
//! are sent with a Content-Security-Policy that allows no inline script.

mod pages;
mod session;
mod templates;

use actix_web::web;

pub use pages::embedded_bytes;
pub use session::SESSION_COOKIE;

/// The signed-in user of a browser request, if its session is valid (the API accepts it for
/// reading what console pages link to).
pub async fn signed_in(
    req: &actix_web::HttpRequest,
    app: &crate::app::App,
) -> Option<crate::auth::Principal> {
    session::current(req, app).await.map(|s| s.who)
}

/// The signed-in user of a browser request that changes something: valid only with the
/// session's CSRF token in `X-CSRF-Token` (the console's script sends it; another site cannot
/// read it), so the console acts through the same API routes a program calls.
pub async fn signed_in_for_write(
    req: &actix_web::HttpRequest,
    app: &crate::app::App,
    csrf: &str,
) -> Option<crate::auth::Principal> {
    let s = session::current(req, app).await?;
    session::csrf_ok(&s, csrf).then_some(s.who)
}

/// Registers the console's routes (outside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::overview))
        .route("/login", web::get().to(session::login_form))
        .route("/login", web::post().to(session::login))
        .route("/logout", web::post().to(session::logout))
        .route("/cases", web::get().to(pages::cases))
        .route("/cases/{archive_id}", web::get().to(pages::case))
        .route("/rejections", web::get().to(pages::rejections))
        .route("/audit", web::get().to(pages::audit))
        .route("/admin/tokens", web::get().to(pages::tokens))
        .route(
            "/admin/tokens/{token_id}/revoke",
            web::post().to(pages::revoke_token),
        )
        .route("/import", web::get().to(pages::import))
        .route("/filing", web::get().to(pages::filing))
        .route("/disposal", web::get().to(pages::disposal))
        .route("/disposal/{list_id}", web::get().to(pages::disposal_list))
        .route(
            "/disposal/{list_id}/print",
            web::get().to(pages::disposal_list),
        )
        .route("/transfers", web::get().to(pages::transfers))
        .route("/transfers/{transfer_id}", web::get().to(pages::transfer))
        .route(
            "/transfers/{transfer_id}/progress",
            web::get().to(pages::transfer_progress),
        )
        .route("/retention", web::get().to(pages::retention))
        .route("/static/{file}", web::get().to(pages::asset))
        // Browsers ask for it on documents without a <link rel="icon"> (fragments, printouts).
        .route("/favicon.ico", web::get().to(pages::favicon));
}

#[cfg(test)]
mod tests {
    /// The console ships inside the binary: templates, stylesheet, script, htmx and the icon stay
    /// small (about 114 KB today; 200 KB is the budget).
    #[test]
    fn embedded_assets_stay_within_their_budget() {
        let n = super::embedded_bytes();
        assert!(n > 50_000 && n < 200_000, "{n} bytes");
    }
}
