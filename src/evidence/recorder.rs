//! Group commit for the ingest's writes. Every ingest makes two durable writes (its intent, then
//! its case); with SQLite each commit is an fsync of the WAL and only one writer runs at a time.
//! The recorder takes whatever writes are waiting, applies each inside its own savepoint (one
//! failing write — a duplicate case key — does not fail the others) and commits them together:
//! under load many ingests share one fsync, and alone an ingest waits for nobody.

use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::log::{Log, append_on};

use super::note::aip_entry;
use crate::db::cases::{CaseRow, EventRow, FileRow, insert_case_on};
use crate::db::{Db, DbError};

pub enum Write {
    Intent {
        archive_id: String,
        object_key: String,
    },
    /// A row of the hash-chained audit trail.
    Audit(super::trail::Event),
    /// An event entered in the transparency log only (key rotations, …).
    LogEvent { kind: String, entry: String },
    Case {
        row: Box<CaseRow>,
        files: Vec<FileRow>,
        events: Vec<EventRow>,
        audit: super::trail::Event,
    },
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<(), DbError>>,
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
}

const MAX_BATCH: usize = 64;

impl Recorder {
    /// `log`: where archived packages are entered, in the same transaction as their case.
    /// `grown` is notified after each commit that appended to the log.
    pub fn start(
        db: Db,
        grown: std::sync::Arc<tokio::sync::Notify>,
        tasks: &crate::tasks::Tasks,
    ) -> Recorder {
        let (tx, rx) = mpsc::channel(1024);
        tasks.spawn_until_stopped("recorder", move |stop| run(db, grown, rx, stop));
        Recorder { tx }
    }

    /// Applies `w` durably; returns once the transaction holding it has committed.
    pub async fn write(&self, w: Write) -> Result<(), DbError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { write: w, done })
            .await
            .map_err(|_| DbError::Failed("the recorder has stopped".into()))?;
        wait.await
            .map_err(|_| DbError::Failed("the recorder has stopped".into()))?
    }
}

/// Signs a checkpoint after the log grows, at most every [`CHECKPOINT_EVERY`]: under load many
/// appends share one checkpoint; a proof requested in between publishes its own.
pub(super) async fn checkpoints(
    log: Log,
    grown: std::sync::Arc<tokio::sync::Notify>,
    mut stop: crate::tasks::Stop,
) {
    loop {
        let stopping = tokio::select! {
            _ = grown.notified() => false,
            _ = stop.stopped() => true,
        };
        // On the way out too: the last appends get a checkpoint before the server goes.
        if let Err(e) = log.publish().await {
            tracing::error!(error = %e, "cannot publish a log checkpoint");
        }
        if stopping {
            return;
        }
        if !stop.sleep(CHECKPOINT_EVERY).await {
            let _ = log.publish().await;
            return;
        }
    }
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

async fn run(
    db: Db,
    grown: std::sync::Arc<tokio::sync::Notify>,
    mut rx: mpsc::Receiver<Job>,
    mut stop: crate::tasks::Stop,
) {
    loop {
        let first = tokio::select! {
            j = rx.recv() => j,
            _ = stop.stopped() => {
                // Drain: what was queued is written; later writes are refused.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let grows_log = batch
            .iter()
            .any(|j| matches!(j.write, Write::Case { .. } | Write::LogEvent { .. }));
        commit(&db, batch).await;
        if grows_log {
            grown.notify_one();
        }
    }
}

async fn apply(conn: &mut sqlx::AnyConnection, postgres: bool, w: &Write) -> Result<(), DbError> {
    match w {
        Write::Intent {
            archive_id,
            object_key,
        } => Db::insert_intent_on(conn, archive_id, object_key).await,
        Write::Audit(e) => super::trail::append_on(conn, postgres, e).await,
        Write::LogEvent { kind, entry } => {
            append_on(conn, postgres, kind, None, entry).await?;
            Ok(())
        }
        Write::Case {
            row,
            files,
            events,
            audit,
        } => {
            insert_case_on(conn, row, files, events).await?;
            let entry = aip_entry(&row.archive_id, &row.tagmanifest_sha256);
            append_on(conn, postgres, "aip", Some(&row.archive_id), &entry).await?;
            // The trail row of the submission or import that archived it, in the same commit.
            super::trail::append_on(conn, postgres, audit).await
        }
    }
}

async fn commit(db: &Db, batch: Vec<Job>) {
    let mut results: Vec<Result<(), DbError>> = Vec::with_capacity(batch.len());
    let outcome: Result<(), DbError> = async {
        let mut tx = db.begin_write().await?;
        for job in &batch {
            let mut sp = tx.begin().await?;
            match apply(&mut sp, db.postgres, &job.write).await {
                Ok(()) => {
                    sp.commit().await?;
                    results.push(Ok(()));
                }
                Err(e) => {
                    sp.rollback().await?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            for (job, r) in batch.into_iter().zip(results) {
                let _ = job.done.send(r);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for job in batch {
                let _ = job.done.send(Err(DbError::Failed(msg.clone())));
            }
        }
    }
}
