//! HTTP layer: routes, request logging and the [`Application`] a test can start on a random port.
//! Handlers only translate between HTTP and the services of [`crate::app::App`].

mod auth;
mod cases;
mod digitised;
mod disposal;
pub mod error;
mod filing;
mod log;
pub mod openapi;
mod tls;
mod tokens;
mod transfers;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::{App, OpenError};
use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("HTTPS: {0}")]
    Tls(String),
}

pub struct Application {
    port: u16,
    server: Server,
    app: Arc<App>,
}

/// How long running writes get to finish after SIGTERM before the process ends.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl Application {
    /// Opens the archive and binds the listener (`127.0.0.1:0` picks a free port).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        Self::build_with_clock(settings, Arc::new(crate::clock::SystemClock)).await
    }

    /// [`Application::build`] with the calendar taken from `clock`.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Application, StartError> {
        let listen = settings.listen.clone();
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => {
                Some(tls::server_config(cert, key).map_err(StartError::Tls)?)
            }
            _ => None,
        };
        let app =
            App::open_with_clock(settings, clock, crate::app::Opening::CreateIfMissing).await?;
        let listener =
            TcpListener::bind(&listen).map_err(|e| StartError::Listen(listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Listen(listen.clone(), e))?
            .port();
        let server = run(listener, app.clone(), tls).map_err(|e| StartError::Listen(listen, e))?;
        app.start_background();
        Ok(Application { port, server, app })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// A handle that stops the server as SIGTERM does (tests use it).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT (or [`Application::handle`]'s stop): the listener closes,
    /// requests in flight finish, then the background work stops and the recorder drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let r = self.server.await;
        self.app.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("stopped");
        r
    }
}

/// Page and page size from a query: absent → the defaults; out of range → 400 naming the
/// parameter (a huge page number must not wrap into page 1).
pub(crate) fn paging(
    page: Option<i64>,
    per_page: Option<i64>,
    default_per_page: i64,
    max_per_page: i64,
) -> Result<(i64, i64), error::ApiError> {
    const MAX_PAGE: i64 = 1_000_000;
    let page = page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(error::ApiError::BadRequest(format!(
            "page: {page} is out of range (1 to {MAX_PAGE})"
        )));
    }
    let per_page = per_page.unwrap_or(default_per_page);
    if !(1..=max_per_page).contains(&per_page) {
        return Err(error::ApiError::BadRequest(format!(
            "per_page: {per_page} is out of range (1 to {max_per_page})"
        )));
    }
    Ok((page, per_page))
}

/// Logs one line per request: method, matched route (never the raw path or query, which may
/// carry personal data), status and duration, inside a span with a request id.
async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let span = tracing::info_span!("request", id = %request_id, %method, %route);
    let res = {
        use tracing::Instrument;
        next.call(req).instrument(span.clone()).await
    };
    let _e = span.enter();
    match &res {
        Ok(r) => tracing::info!(
            status = r.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        ),
        Err(e) => {
            tracing::warn!(error = %e, ms = started.elapsed().as_millis() as u64, "request failed")
        }
    }
    res
}

/// Serves `app` on `listener`: plain HTTP, or HTTPS with `tls`.
/// Registers the `/api/v1` routes and lists them: one table, so that the OpenAPI description
/// ([`openapi`]) is checked against exactly what the server answers.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path,)*) => {
        fn api_scope() -> actix_web::Scope {
            web::scope("/api/v1")$(.route($path, web::$method().to($handler)))*
        }
        /// Every `/api/v1` route as (method, path as actix writes it).
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];
    };
}

api_routes! {
    get "/openapi.json" => openapi_json,
    get "/keys" => keys,
    get "/tokens" => tokens::list,
    post "/tokens" => tokens::create,
    post "/tokens/{token_id}/revoke" => tokens::revoke,
    post "/cases" => cases::submit,
    get "/cases" => cases::list,
    get "/cases/{archive_id}" => cases::show,
    get "/cases/{archive_id}/package" => cases::package,
    get "/cases/{archive_id}/evidence" => cases::evidence,
    get "/cases/{archive_id}/files/{path:.*}" => cases::file,
    get "/cases/{archive_id}/proof" => log::proof,
    post "/cases/{archive_id}/digitised" => digitised::add,
    get "/cases/{archive_id}/checks" => cases::checks,
    post "/cases/{archive_id}/verify" => cases::verify_now,
    get "/cases/{archive_id}/holds" => disposal::holds,
    post "/cases/{archive_id}/holds" => disposal::place_hold,
    post "/cases/{archive_id}/holds/{hold_id}/release" => disposal::release_hold,
    get "/retention/rules" => filing::get_rules,
    put "/retention/rules" => filing::put_rules,
    post "/retention/reevaluate" => filing::reevaluate,
    post "/filings" => filing::run,
    get "/filings/{year}" => filing::status,
    put "/filings/{year}/expected" => filing::put_expected,
    get "/filings/{year}/batches/{batch_id}/{name}" => filing::document,
    get "/disposal/due" => disposal::due,
    get "/disposal/lists" => disposal::lists,
    post "/disposal/lists" => disposal::propose,
    get "/disposal/lists/{list_id}" => disposal::show,
    post "/disposal/lists/{list_id}/decision" => disposal::decide,
    post "/disposal/lists/{list_id}/execute" => disposal::execute,
    get "/disposal/lists/{list_id}/{name}" => disposal::document,
    get "/received" => transfers::received,
    post "/incoming/{transfer_id}/complete" => transfers::incoming_complete,
    head "/incoming/{transfer_id}/{file}" => transfers::incoming_head,
    put "/incoming/{transfer_id}/{file}" => transfers::incoming_put,
    post "/transfers/{transfer_id}/send" => transfers::send,
    post "/transfers" => transfers::draft,
    get "/transfers" => transfers::list,
    get "/transfers/{transfer_id}" => transfers::show,
    put "/transfers/{transfer_id}/decisions" => transfers::decide,
    post "/transfers/{transfer_id}/approve" => transfers::approve,
    post "/transfers/{transfer_id}/build" => transfers::build,
    get "/transfers/{transfer_id}/volumes/{which}" => transfers::volume,
    get "/audits" => cases::audits,
    get "/audit" => log::trail,
    post "/log/reconcile" => log::reconcile,
    get "/log/checkpoint" => log::checkpoint,
    get "/log/consistency" => log::consistency,
}

pub fn run(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Server> {
    use actix_service::{ServiceFactoryExt as _, map_config};
    use actix_web::dev::AppConfig;
    let data = web::Data::new(app.clone());
    let json_limit = app.settings().limits.max_json_bytes;
    let routes =
        move || {
            actix_web::App::new()
                .wrap(from_fn(error::localize))
                .wrap(from_fn(log_requests))
                .app_data(data.clone())
                // Completeness declarations and disposal lists can hold many thousands of keys;
                // bounded so that a few concurrent bodies cannot take the server's memory.
                .app_data(web::JsonConfig::default().limit(json_limit).error_handler(
                    move |e, _| {
                        use actix_web::error::JsonPayloadError as J;
                        match e {
                            J::Overflow { .. } | J::OverflowKnownLength { .. } => {
                                error::ApiError::TooLarge(json_limit as u64).into()
                            }
                            e => error::ApiError::BadRequest(format!("the JSON body: {e}")).into(),
                        }
                    },
                ))
                // Malformed query strings and path segments get the same JSON error body as
                // everything else (actix answers plain text by default).
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    error::ApiError::BadRequest(format!("the query string: {e}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    error::ApiError::NotFound(format!("the path: {e}")).into()
                }))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
                .service(api_scope())
                .configure(crate::console::routes)
                .default_service(web::to(error::no_such_route))
        };
    // actix-web's HttpServer answers every `Expect: 100-continue` at once; assembled here from
    // its parts, a submission's is answered only while a processing slot is free, else 503 with
    // Retry-After before the client sends a byte of its body.
    // One service for plain HTTP and HTTPS (a macro: the two differ in the stream type); the
    // transport is chosen once, at start.
    macro_rules! service {
        ($app:expr) => {{
        let app = $app.clone();
        let expect = actix_service::fn_service(move |req: actix_http::Request| {
            let busy = req.method() == actix_web::http::Method::POST
                && req.path() == "/api/v1/cases"
                && !app.ingest().has_free_slot();
            async move {
                if busy {
                    // The same 503 body and Retry-After as every other busy answer.
                    Err(error::ApiError::Ingest(crate::ingest::IngestError::Busy(
                        "every processing slot is taken; send the body after Retry-After seconds"
                            .into(),
                    ))
                    .into())
                } else {
                    Ok::<_, actix_web::Error>(req)
                }
            }
        });
        let factory = actix_service::IntoServiceFactory::into_factory(routes())
            .map_err(|err: actix_web::Error| err.error_response());
        actix_http::HttpService::build()
            // HttpServer's defaults: a client that is refused mid-body gets a second to read
            // the answer before the connection closes.
            .client_request_timeout(std::time::Duration::from_secs(5))
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .expect(expect)
            .finish(map_config(factory, |_| AppConfig::default()))
        }};
    }
    // actix-web's HttpServer answers every `Expect: 100-continue` at once; assembled here from
    // its parts, a submission's is answered only while a processing slot is free, else 503 with
    // Retry-After before the client sends a byte of its body.
    let builder = actix_server::Server::build();
    let server = match tls {
        None => builder.listen("guidang", listener, move || service!(app).tcp())?,
        Some(config) => builder.listen("guidang", listener, move || {
            service!(app).rustls_0_23((*config).clone())
        })?,
    }
    .run();
    Ok(server)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(app: web::Data<Arc<App>>) -> HttpResponse {
    let db = app.db().ping().await;
    let store = app.store().ping().await;
    let body = json!({
        "database": if db.is_ok() { "ok" } else { "unreachable" },
        "object_store": if store.is_ok() { "ok" } else { "unreachable" },
    });
    if db.is_ok() && store.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(app: web::Data<Arc<App>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(app.metrics().render())
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi::document(env!("CARGO_PKG_VERSION")))
}

async fn keys(app: web::Data<Arc<App>>) -> Result<HttpResponse, error::ApiError> {
    let keys = app.keys().published().await?;
    Ok(HttpResponse::Ok().json(json!({"keys": keys})))
}
