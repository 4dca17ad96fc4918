//! The audit trail: an append-only, hash-chained record of every action that reads a package or
//! changes anything — who (token id or command-line user, and role), what, on what, when, and the
//! outcome. Never personal data: targets are archive ids, not file names or metadata values.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Bind, Db, DbError, bind_all};

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
    let head = sqlx::query("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (seq, prev) = match head {
        Some(r) => (r.get::<i64, _>(0) + 1, r.get::<String, _>(1)),
        None => (0, GENESIS.to_string()),
    };
    let at = crate::db::now_rfc3339();
    let hash = chain_hash(&prev, seq, &at, e);
    sqlx::query(
        "INSERT INTO audit_trail (seq, at, actor, role, action, target, outcome, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(&at)
    .bind(&e.actor)
    .bind(&e.role)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.outcome)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The current head: (seq, hash), or none for an empty trail.
pub async fn head(db: &Db) -> Result<Option<(i64, String)>, DbError> {
    let r = sqlx::query("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.map(|r| (r.get(0), r.get(1))))
}

/// Recomputes the chain from the start: `Ok(rows)` if intact, `Err(seq, why)` at the first break.
pub async fn verify_chain(db: &Db) -> Result<Result<i64, (i64, String)>, DbError> {
    let mut prev = GENESIS.to_string();
    let mut expected = 0i64;
    let mut after = -1i64;
    loop {
        let rows = sqlx::query(
            "SELECT seq, at, actor, role, action, target, outcome, prev_hash, hash FROM audit_trail WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&db.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Ok(expected));
        }
        for r in &rows {
            let seq: i64 = r.get("seq");
            if seq != expected {
                return Ok(Err((expected, "a row is missing".into())));
            }
            let e = Event {
                actor: r.get("actor"),
                role: r.get("role"),
                action: r.get("action"),
                target: r.get("target"),
                outcome: r.get("outcome"),
            };
            let at: String = r.get("at");
            if r.get::<String, _>("prev_hash") != prev {
                return Ok(Err((seq, "does not follow the previous row".into())));
            }
            let h = chain_hash(&prev, seq, &at, &e);
            if r.get::<String, _>("hash") != h {
                return Ok(Err((
                    seq,
                    "the row was changed after it was written".into(),
                )));
            }
            prev = h;
            expected += 1;
            after = seq;
        }
    }
}

#[derive(Debug, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: i64,
}

pub async fn list(db: &Db, f: &Filter) -> Result<Vec<serde_json::Value>, DbError> {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    for (col, op, v) in [
        ("actor", "=", &f.actor),
        ("action", "=", &f.action),
        ("target", "=", &f.target),
        ("at", ">=", &f.since),
        ("at", "<", &f.until),
    ] {
        if let Some(v) = v {
            binds.push(Bind::S(v.clone()));
            conds.push(format!("{col} {op} ${}", binds.len()));
        }
    }
    binds.push(Bind::I(f.limit));
    let wh = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT seq, at, actor, role, action, target, outcome, hash FROM audit_trail {wh} ORDER BY seq DESC LIMIT ${}",
        binds.len()
    );
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "seq": r.get::<i64, _>("seq"),
                "at": r.get::<String, _>("at"),
                "actor": r.get::<String, _>("actor"),
                "role": r.get::<String, _>("role"),
                "action": r.get::<String, _>("action"),
                "target": r.get::<String, _>("target"),
                "outcome": r.get::<String, _>("outcome"),
                "hash": r.get::<String, _>("hash"),
            })
        })
        .collect())
}
