//! The console's pages: each reads through the same service (and with the same caller) as the
//! API route that returns the same facts.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::session::required;
use super::templates::{page, render};
use crate::app::App;
use crate::db::cases::CaseFilter;

/// The page's session (or the redirect to sign-in) and, given a role test, 403 for roles the
/// matching API route refuses.
macro_rules! signed_in {
    ($req:expr, $app:expr) => {
        match required(&$req, &$app).await {
            Ok(s) => s,
            Err(redirect) => return redirect,
        }
    };
    ($req:expr, $app:expr, $may:expr) => {{
        let s = signed_in!($req, $app);
        if !$may(&s) {
            return forbidden(&s);
        }
        s
    }};
}

/// A service's answer, or the page that says the database is unavailable.
macro_rules! or_unavailable {
    ($e:expr, $s:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return unavailable(e, &$s),
        }
    };
}

fn unavailable(e: impl std::fmt::Display, s: &super::session::Session) -> HttpResponse {
    tracing::error!(error = %e, "console page");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "error.html",
        minijinja::context! { title => "暂时无法显示", message => "数据库暂时不可用，请稍后刷新" },
        Some(s),
    )
}

/// Bars of cases archived per month, as SVG made here (no script, no external asset).
fn month_chart(months: &[(String, i64)]) -> String {
    let (w, h, pad) = (720.0_f64, 220.0_f64, 28.0_f64);
    let max = months.iter().map(|m| m.1).max().unwrap_or(0).max(1) as f64;
    let n = months.len().max(1) as f64;
    // Bars of at most 60 units, centred: one month must not fill the chart.
    let bw = ((w - 2.0 * pad) / n).min(60.0);
    let left = pad + ((w - 2.0 * pad) - bw * n) / 2.0;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"每月归档办件数\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    s.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" class=\"axis\"/>",
        y = h - pad,
        x2 = w - pad
    ));
    for (i, (m, c)) in months.iter().enumerate() {
        let bh = (*c as f64 / max) * (h - 2.0 * pad - 14.0);
        let x = left + i as f64 * bw + bw * 0.15;
        let y = h - pad - bh;
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" class=\"bar\"><title>{m}: {c} 件</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{c}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{}</text>",
            bw * 0.7,
            x + bw * 0.35,
            y - 4.0,
            x + bw * 0.35,
            h - pad + 16.0,
            m
        ));
    }
    if months.is_empty() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">尚无归档办件</text>",
            w / 2.0,
            h / 2.0
        ));
    }
    s.push_str("</svg>");
    s
}

pub async fn overview(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    let s = signed_in!(req, app);
    let o = or_unavailable!(app.db().overview(), s);
    let year = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y")
        .to_string()
        .parse::<i64>()
        .unwrap_or(2026)
        - 1;
    let filing = or_unavailable!(app.filing().status(year), s);
    let transfers: Vec<_> = match app.transfers().list().await {
        Ok(t) => t.into_iter().filter(|t| t.state != "transferred").collect(),
        Err(e) => return unavailable(e, &s),
    };
    let rejections: Vec<_> = o
        .rejections
        .iter()
        .take(10)
        .map(|(code, n)| {
            minijinja::context! { code => code, zh => crate::problem::Code::parse(code).map(|c| c.zh()).unwrap_or(""), count => n }
        })
        .collect();
    render(
        "overview.html",
        minijinja::context! {
            cases => o.cases,
            chart => month_chart(&o.per_month),
            rejections => rejections,
            fixity_failed => o.fixity_failed,
            holds => o.holds,
            filing => minijinja::Value::from_serialize(&filing),
            transfers => minijinja::Value::from_serialize(&transfers),
        },
        Some(&s),
    )
}

#[derive(Deserialize)]
pub struct CasesQuery {
    q: Option<String>,
    year: Option<String>,
    task_code: Option<String>,
    status: Option<String>,
    social_code: Option<String>,
    page: Option<String>,
}

pub async fn cases(
    req: HttpRequest,
    q: web::Query<CasesQuery>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_cases);
    let q = q.into_inner();
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    // A form leaves fields empty; a number that is not one is ignored, as a search box would.
    let year = text(&q.year).and_then(|y| y.parse::<i64>().ok());
    let page_no = text(&q.page)
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let f = CaseFilter {
        year,
        task_code: text(&q.task_code),
        status: text(&q.status),
        q: text(&q.q),
        org: text(&q.social_code),
        page: page_no,
        per_page: 50,
    };
    let list = or_unavailable!(app.cases().list(&s.who, f), s);
    let pages = (list.total + 49) / 50;
    render(
        "cases.html",
        minijinja::context! {
            q => text(&q.q).unwrap_or_default(),
            year => year.map(|y| y.to_string()).unwrap_or_default(),
            task_code => text(&q.task_code).unwrap_or_default(),
            status => text(&q.status).unwrap_or_default(),
            social_code => text(&q.social_code).unwrap_or_default(),
            list => minijinja::Value::from_serialize(&list),
            page => page_no,
            pages => pages,
        },
        Some(&s),
    )
}

pub async fn case(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_cases);
    let id = path.into_inner();
    let view = match app.cases().read(&s.who, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "error.html",
                minijinja::context! { title => "没有这件办件", message => format!("档案标识 {id} 不存在") },
                Some(&s),
            );
        }
        Err(e) => return unavailable(e, &s),
    };
    let checks = or_unavailable!(app.cases().checks(&s.who, &id), s);
    let holds = or_unavailable!(app.disposal().holds_of(&id), s);
    render(
        "case.html",
        minijinja::context! {
            case => minijinja::Value::from_serialize(&view),
            checks => minijinja::Value::from_serialize(&checks),
            holds => minijinja::Value::from_serialize(&holds),
            reads_content => s.who.reads_content(),
            archivist => s.who.role == crate::auth::Role::Archivist,
        },
        Some(&s),
    )
}

const CSS: &str = include_str!("../../static/console/console.css");
const FAVICON: &str = include_str!("../../static/console/favicon.svg");
const SCRIPT: &str = include_str!("../../static/console/console.js");
/// htmx 2.0.11 from the npm registry (htmx.org, 0BSD; see static/console/vendor/).
const HTMX: &str = include_str!("../../static/console/vendor/htmx-2.0.11.min.js");

/// The size of everything the console embeds (templates, styles, scripts, icon), for the
/// closing note and `/metrics`-style reporting.
pub fn embedded_bytes() -> usize {
    CSS.len() + FAVICON.len() + SCRIPT.len() + HTMX.len() + super::templates::bytes()
}

pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(FAVICON)
}

pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let script = |body: &'static str| {
        HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(body)
    };
    match path.as_str() {
        "console.js" => script(SCRIPT),
        "htmx.min.js" => script(HTMX),
        "console.css" => HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(CSS),
        "favicon.svg" => HttpResponse::Ok()
            .content_type("image/svg+xml")
            .insert_header(("Cache-Control", "public, max-age=86400"))
            .body(FAVICON),
        _ => HttpResponse::NotFound().finish(),
    }
}

#[derive(Deserialize)]
pub struct RejectionsQuery {
    code: Option<String>,
    page: Option<String>,
}

/// What was refused at submission, newest first, each problem code beside its Chinese name.
pub async fn rejections(
    req: HttpRequest,
    q: web::Query<RejectionsQuery>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app);
    if !matches!(
        s.who.role,
        crate::auth::Role::Archivist | crate::auth::Role::Admin | crate::auth::Role::Auditor
    ) {
        return forbidden(&s);
    }
    let code = q
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| crate::problem::Code::parse(c).is_some())
        .map(String::from);
    let page_no = q
        .page
        .as_deref()
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let (rows, total) = match app
        .db()
        .rejections(code.as_deref(), 50, (page_no - 1) * 50)
        .await
    {
        Ok(r) => r,
        Err(e) => return unavailable(e, &s),
    };
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let codes: Vec<_> = r
                .codes
                .iter()
                .map(|c| {
                    minijinja::context! {
                        code => c,
                        zh => crate::problem::Code::parse(c).map(|x| x.zh()).unwrap_or(""),
                    }
                })
                .collect();
            minijinja::context! {
                at => r.at.clone(), year => r.year, social_code => r.social_code.clone(),
                task_code => r.task_code.clone(), project_id => r.project_id.clone(), codes => codes,
            }
        })
        .collect();
    let all_codes: Vec<_> = crate::problem::Code::ALL
        .iter()
        .map(|c| minijinja::context! { code => c.as_str(), zh => c.zh() })
        .collect();
    render(
        "rejections.html",
        minijinja::context! {
            items => items, total => total, code => code.unwrap_or_default(),
            page => page_no, pages => (total + 49) / 50, all_codes => all_codes,
        },
        Some(&s),
    )
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
}

/// The audit trail, newest first, with whether its hash chain is intact: for auditors and
/// administrators, as `GET /api/v1/audit`.
pub async fn audit(
    req: HttpRequest,
    q: web::Query<AuditQuery>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app);
    if !matches!(
        s.who.role,
        crate::auth::Role::Auditor | crate::auth::Role::Admin
    ) {
        return forbidden(&s);
    }
    let q = q.into_inner();
    let text = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let f = crate::evidence::trail::Filter {
        actor: text(q.actor),
        action: text(q.action),
        target: text(q.target),
        since: None,
        until: None,
        limit: 200,
    };
    let rows = or_unavailable!(crate::evidence::trail::list(app.db(), &f), s);
    let chain = match crate::evidence::trail::verify_chain(app.db()).await {
        Ok(Ok(n)) => minijinja::context! { intact => true, rows => n },
        Ok(Err((seq, why))) => {
            minijinja::context! { intact => false, broken_at => seq, why => why }
        }
        Err(e) => return unavailable(e, &s),
    };
    let checkpoint = match app.evidence().log().latest().await {
        Ok(c) => c.map(|c| c.note),
        Err(e) => return unavailable(e, &s),
    };
    let keys = or_unavailable!(app.keys().published(), s);
    render(
        "audit.html",
        minijinja::context! {
            checkpoint => checkpoint,
            keys => minijinja::Value::from_serialize(&keys),
            rows => minijinja::Value::from_serialize(&rows),
            chain => chain,
            actor => f.actor.unwrap_or_default(),
            action => f.action.unwrap_or_default(),
            target => f.target.unwrap_or_default(),
        },
        Some(&s),
    )
}

/// The roles `GET /api/v1/cases` serves (administrators see register-level data only).
fn reads_cases(s: &super::session::Session) -> bool {
    matches!(
        s.who.role,
        crate::auth::Role::Archivist | crate::auth::Role::Auditor
    )
}

/// The page a role may not see, as the API would answer 403.
fn forbidden(s: &super::session::Session) -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        "error.html",
        minijinja::context! {
            title => "无权查看",
            message => format!("{}角色不能查看此页", super::templates::role_zh(s.who.role)),
        },
        Some(s),
    )
}

/// Tokens for administrators: every token's state, and revocation (as
/// `POST /api/v1/tokens/{id}/revoke`). Tokens are made at the command line, shown there once.
pub async fn tokens(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    let s = signed_in!(req, app);
    if s.who.role != crate::auth::Role::Admin {
        return forbidden(&s);
    }
    let rows = or_unavailable!(app.tokens().list(), s);
    let me = s.who.id.clone();
    render(
        "tokens.html",
        minijinja::context! { rows => minijinja::Value::from_serialize(&rows), me => me },
        Some(&s),
    )
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn revoke_token(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app);
    if !super::session::csrf_ok(&s, &form.csrf) {
        return page(
            StatusCode::FORBIDDEN,
            "error.html",
            minijinja::context! { title => "请求无效", message => "表单已过期，请刷新页面后重试" },
            Some(&s),
        );
    }
    if s.who.role != crate::auth::Role::Admin {
        return forbidden(&s);
    }
    let id = path.into_inner();
    match app.tokens().revoke(&id, &s.who).await {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, "/admin/tokens"))
            .finish(),
        Err(e) => unavailable(e, &s),
    }
}

/// The roles of the API's records routes (filing, disposal, transfers, retention): every role
/// that may sign in.
fn reads_records(s: &super::session::Session) -> bool {
    matches!(
        s.who.role,
        crate::auth::Role::Archivist | crate::auth::Role::Auditor | crate::auth::Role::Admin
    )
}

fn role_flags(s: &super::session::Session) -> (bool, bool, bool) {
    use crate::auth::Role;
    let (archivist, admin) = (s.who.role == Role::Archivist, s.who.role == Role::Admin);
    (archivist, admin, archivist || admin)
}

/// Offline import through the page: each ZIP goes to `POST /api/v1/cases` (the script), as
/// `guidang import` does for files on the server.
pub async fn import(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    let s = signed_in!(req, app);
    if s.who.role != crate::auth::Role::Archivist {
        return forbidden(&s);
    }
    render("import.html", minijinja::context! {}, Some(&s))
}

#[derive(Deserialize)]
pub struct YearQuery {
    year: Option<String>,
}

fn last_year() -> i64 {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y")
        .to_string()
        .parse::<i64>()
        .unwrap_or(2026)
        - 1
}

/// A year's filing: deadline, counts, completeness, batches with their printable documents; a
/// keeper runs it (`POST /api/v1/filings`).
pub async fn filing(
    req: HttpRequest,
    q: web::Query<YearQuery>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let year = q
        .year
        .as_deref()
        .and_then(|y| y.trim().parse::<i64>().ok())
        .filter(|y| (1990..=2100).contains(y))
        .unwrap_or_else(last_year);
    let status = or_unavailable!(app.filing().status(year), s);
    let (_, _, keeper) = role_flags(&s);
    render(
        "filing.html",
        minijinja::context! { year => year, status => minijinja::Value::from_serialize(&status), keeper => keeper },
        Some(&s),
    )
}

/// Due cases, proposal (archivists) and the lists.
pub async fn disposal(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let due = or_unavailable!(app.disposal().due(1, 200), s);
    let lists = or_unavailable!(app.disposal().lists(), s);
    let (archivist, _, _) = role_flags(&s);
    render(
        "disposal.html",
        minijinja::context! {
            due => minijinja::Value::from_serialize(&due),
            lists => minijinja::Value::from_serialize(&lists.items),
            archivist => archivist,
        },
        Some(&s),
    )
}

/// One disposal list: its cases, decision (administrators; four eyes explained) and execution.
pub async fn disposal_list(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let l = match app.disposal().list(&path).await {
        Ok(Some(l)) => l,
        Ok(None) => return not_found(&s, "没有这份销毁清单"),
        Err(e) => return unavailable(e, &s),
    };
    if req.path().ends_with("/print") {
        return render(
            "disposal_print.html",
            minijinja::context! { l => minijinja::Value::from_serialize(&l) },
            Some(&s),
        );
    }
    let mine = l.list.proposed_by.as_deref() == Some(s.who.id.as_str())
        || l.list.proposed_by_name.as_deref() == Some(s.who.name.as_str());
    let (_, admin, keeper) = role_flags(&s);
    render(
        "disposal_list.html",
        minijinja::context! { l => minijinja::Value::from_serialize(&l), admin => admin, keeper => keeper, mine => mine },
        Some(&s),
    )
}

pub async fn transfers(req: HttpRequest, app: web::Data<Arc<App>>) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let items = or_unavailable!(app.transfers().list(), s);
    let (archivist, _, _) = role_flags(&s);
    render(
        "transfers.html",
        minijinja::context! { items => minijinja::Value::from_serialize(&items), archivist => archivist },
        Some(&s),
    )
}

async fn transfer_view(
    s: &super::session::Session,
    app: &App,
    id: &str,
) -> Result<crate::transfer::BatchView, HttpResponse> {
    match app.transfers().view(id).await {
        Ok(v) => Ok(v),
        Err(crate::transfer::TransferError::NotFound(_)) => Err(not_found(s, "没有这个移交批次")),
        Err(e) => Err(unavailable(e, s)),
    }
}

/// A transfer batch: state, blockers, decisions, approval (four eyes), build, delivery; its
/// progress refreshes itself (htmx) while something runs.
pub async fn transfer(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let v = match transfer_view(&s, &app, &path).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mine = v.batch.prepared_by == s.who.id
        || v.batch.prepared_by_name.as_deref() == Some(s.who.name.as_str());
    let (archivist, admin, _) = role_flags(&s);
    render(
        "transfer.html",
        minijinja::context! { t => minijinja::Value::from_serialize(&v), archivist => archivist, admin => admin, mine => mine },
        Some(&s),
    )
}

/// The progress part of a batch's page alone (what htmx swaps in).
pub async fn transfer_progress(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    match transfer_view(&s, &app, &path).await {
        Ok(v) => super::templates::fragment(
            "transfer_progress.html",
            minijinja::context! { t => minijinja::Value::from_serialize(&v) },
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

/// The retention rules, any version; administrators publish a new one.
pub async fn retention(
    req: HttpRequest,
    q: web::Query<VersionQuery>,
    app: web::Data<Arc<App>>,
) -> HttpResponse {
    let s = signed_in!(req, app, reads_records);
    let rules = app.rules();
    let set = match q
        .version
        .as_deref()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        Some(v) => match rules.version(v).await {
            Ok(Some(set)) => set,
            Ok(None) => return not_found(&s, "没有这个版本的规则"),
            Err(e) => return unavailable(e, &s),
        },
        None => match rules.current().await {
            Ok(set) => (*set).clone(),
            Err(e) => return unavailable(e, &s),
        },
    };
    let st = rules.settings();
    let view = serde_json::json!({
        "version": set.version,
        "rules": set.rules,
        "created_at": set.created_at,
        "floor_years": st.floor_years,
        "default": {"retention": st.default, "basis": st.default_basis},
    });
    let rules_json = serde_json::to_string_pretty(&serde_json::json!({ "rules": set.rules }))
        .unwrap_or_default();
    let (_, admin, _) = role_flags(&s);
    render(
        "retention.html",
        minijinja::context! { rules => minijinja::Value::from_serialize(&view), rules_json => rules_json, admin => admin },
        Some(&s),
    )
}

fn not_found(s: &super::session::Session, title: &str) -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "error.html",
        minijinja::context! { title => title, message => "请检查链接或返回列表" },
        Some(s),
    )
}
