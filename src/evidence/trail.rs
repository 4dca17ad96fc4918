//! The audit trail: an append-only, hash-chained record of every action that reads a package or
//! changes anything — who (token id or command-line user, and role), what, on what, when, and the
//! outcome. Never personal data: targets are archive ids, not file names or metadata values.

use crate::db::trail::{self, TrailRow};
use crate::db::{Db, DbError};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn chain_hash(prev: &str, seq: i64, at: &str, e: &Event) -> String {
    let line = format!(
        "{seq}\t{at}\t{}\t{}\t{}\t{}\t{}\n",
        e.actor, e.role, e.action, e.target, e.outcome
    );
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(line.as_bytes());
    hex::encode(h.finalize())
}

/// Appends on the caller's transaction (the recorder's), after the current head.
pub async fn append_on(
    conn: &mut sqlx::AnyConnection,
    postgres: bool,
    e: &Event,
) -> Result<(), DbError> {
    crate::db::locks::AdvisoryLock::Trail
        .hold_on(&mut *conn, postgres)
        .await?;
    let (seq, prev) = match trail::head_on(&mut *conn).await? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (0, GENESIS.to_string()),
    };
    let at = crate::db::now_rfc3339();
    let hash = chain_hash(&prev, seq, &at, e);
    trail::insert_on(
        conn,
        &TrailRow {
            seq,
            at,
            actor: e.actor.clone(),
            role: e.role.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            prev_hash: prev,
            hash,
        },
    )
    .await
}

/// The current head: (seq, hash), or none for an empty trail.
pub async fn head(db: &Db) -> Result<Option<(i64, String)>, DbError> {
    db.trail_head().await
}

/// Recomputes the chain from the start: `Ok(rows)` if intact, `Err(seq, why)` at the first break.
pub async fn verify_chain(db: &Db) -> Result<Result<i64, (i64, String)>, DbError> {
    let mut prev = GENESIS.to_string();
    let mut expected = 0i64;
    let mut after = -1i64;
    loop {
        let rows = db.trail_page(after, 1000).await?;
        if rows.is_empty() {
            return Ok(Ok(expected));
        }
        for r in rows {
            if r.seq != expected {
                return Ok(Err((expected, "a row is missing".into())));
            }
            if r.prev_hash != prev {
                return Ok(Err((r.seq, "does not follow the previous row".into())));
            }
            let e = Event {
                actor: r.actor,
                role: r.role,
                action: r.action,
                target: r.target,
                outcome: r.outcome,
            };
            let h = chain_hash(&prev, r.seq, &r.at, &e);
            if r.hash != h {
                return Ok(Err((
                    r.seq,
                    "the row was changed after it was written".into(),
                )));
            }
            prev = h;
            expected += 1;
            after = r.seq;
        }
    }
}

pub use crate::db::trail::TrailFilter as Filter;

/// Rows matching `f`, newest first.
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<TrailRow>, DbError> {
    db.trail_rows(f).await
}
