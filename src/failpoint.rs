//! Crash-test hooks. `GUIDANG_FAILPOINT=after_store` aborts the process right after a package is
//! stored and before its case is recorded, the worst moment for a crash; `version_after_store`
//! the same for a new package version; `filing_chunk` right after the first chunk of a filing
//! batch commits; `send_after_chunk` after a delivered chunk in the middle of a transfer file,
//! `incoming_partial` with part of an upload request written at the receiver. Tests run the
//! real binary with them.

pub fn failpoint(name: &str) {
    if std::env::var("GUIDANG_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// `GUIDANG_FAILPOINT=hold_slot` keeps each ingest's processing slot for five seconds, so that a
/// test can see what a client gets while every slot is taken.
pub async fn pause(name: &str) {
    if std::env::var("GUIDANG_FAILPOINT").is_ok_and(|v| v == name) {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
