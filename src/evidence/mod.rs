//! Evidence for auditors: the transparency log (RFC 9162 Merkle tree, C2SP signed checkpoints and
//! proofs), the hash-chained audit trail, the DA/T 70 four-property checks and virus scanning.
//!
//! [`Evidence`] is the one way to write evidence. Inside a transaction of one's own (filing,
//! disposal) call [`Evidence::log_on`] and [`Evidence::trail_on`], commit, then
//! [`Evidence::committed`] so a checkpoint is published; standalone rows and ingest's case rows go
//! through the group-commit [`recorder`].

pub mod antivirus;
pub mod checks;
pub mod log;
pub mod merkle;
pub mod note;
pub mod recorder;
pub mod trail;

use std::sync::Arc;

use crate::auth::Principal;
use crate::db::{Db, DbError};
use log::Log;
use recorder::{Recorder, Write};

#[derive(Clone)]
pub struct Evidence {
    db: Db,
    log: Log,
    recorder: Recorder,
    grown: Arc<tokio::sync::Notify>,
}

/// A row of the audit trail for `who` doing `action` on `target` with `outcome`.
pub fn trail_event(who: &Principal, action: &str, target: &str, outcome: &str) -> trail::Event {
    trail::Event {
        actor: who.id.clone(),
        role: who.role.as_str().into(),
        action: action.into(),
        target: target.into(),
        outcome: outcome.into(),
    }
}

impl Evidence {
    /// Starts the recorder and the checkpoint publisher (tasks of `tasks`).
    pub fn start(db: Db, log: Log, tasks: &crate::tasks::Tasks) -> Evidence {
        let grown = Arc::new(tokio::sync::Notify::new());
        let recorder = Recorder::start(db.clone(), grown.clone(), tasks);
        let publisher = log.clone();
        let wake = grown.clone();
        tasks.spawn_until_stopped("log checkpoints", move |stop| {
            recorder::checkpoints(publisher, wake, stop)
        });
        Evidence {
            db,
            log,
            recorder,
            grown,
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The ingest's durable writes (intent, case), group-committed.
    pub async fn record(&self, w: Write) -> Result<(), DbError> {
        self.recorder.write(w).await
    }

    /// Appends a row to the audit trail. A failure to record is logged, not fatal to the action.
    pub async fn audit(&self, who: &Principal, action: &str, target: &str, outcome: &str) {
        let e = trail_event(who, action, target, outcome);
        if let Err(err) = self.recorder.write(Write::Audit(e)).await {
            tracing::error!(error = %err, action, "cannot write the audit trail");
        }
    }

    /// Enters an event (that is not a new package) in the transparency log.
    pub async fn log_event(&self, kind: &str, entry: String) -> Result<(), DbError> {
        self.recorder
            .write(Write::LogEvent {
                kind: kind.into(),
                entry,
            })
            .await
    }

    /// Appends a log entry inside the caller's transaction; returns its index.
    pub async fn log_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        kind: &str,
        archive_id: Option<&str>,
        entry: &str,
    ) -> Result<u64, DbError> {
        log::append_on(conn, self.db.postgres, kind, archive_id, entry).await
    }

    /// Appends an audit-trail row inside the caller's transaction.
    pub async fn trail_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        e: &trail::Event,
    ) -> Result<(), DbError> {
        trail::append_on(conn, self.db.postgres, e).await
    }

    /// Call after committing a transaction that appended to the log: a signed checkpoint that
    /// covers it is published shortly (several commits share one).
    pub fn committed(&self) {
        self.grown.notify_one();
    }

    /// Enters the audit trail's head in the transparency log if it moved since the last time.
    pub async fn enter_audit_head(&self) -> Result<bool, DbError> {
        let Some((seq, hash)) = trail::head(&self.db).await? else {
            return Ok(false);
        };
        let entry = format!("guidang-audit-head-v1\n{seq}\n{hash}\n");
        // The last head entered, by any server: the log itself remembers it.
        let last = self.db.last_entry_of_kind("audit_head").await?;
        if last.as_deref() == Some(entry.as_str()) {
            return Ok(false);
        }
        self.log_event("audit_head", entry).await?;
        Ok(true)
    }
}
