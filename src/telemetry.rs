//! Logging setup. Logs carry request ids, routes, archive ids and problem codes; never metadata
//! values (applicant names and ID numbers are personal information).

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    init_with(json, "info,sqlx=warn")
}

/// [`init`] with another default filter (commands other than `serve` log warnings only).
pub fn init_with(json: bool, default: &str) {
    let filter = EnvFilter::try_from_env("GUIDANG_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}
