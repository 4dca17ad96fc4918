//! Receive: a submission body streamed to a spool file in the data directory, never held in
//! memory, with the size limit enforced while it arrives.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::stream_unpack::{self, Early, EarlyInput, Tee};

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the submission is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("no byte of the upload arrived for {0} s")]
    Idle(u64),
    #[error("cannot spool the submission: {0}")]
    Io(#[from] std::io::Error),
}

/// A received body on disk; the file is removed when this is dropped.
pub struct Spooled {
    pub path: tempfile::TempPath,
    pub size: u64,
}

/// Writes the stream to a new file in `dir`. The disk write happens on a blocking thread fed by a
/// bounded channel, so a slow disk slows the upload instead of filling memory. With `early`, that
/// thread also unpacks, digests and packages the submission as it arrives
/// ([`stream_unpack`]).
pub async fn spool<S, E>(
    mut body: S,
    limit: u64,
    idle: std::time::Duration,
    dir: &Path,
    early: Option<EarlyInput>,
) -> Result<(Spooled, Option<Early>), ReceiveError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let tmp = tempfile::Builder::new()
        .prefix("sip-")
        .suffix(".zip")
        .tempfile_in(dir)?;
    let (file, path) = tmp.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer =
        tokio::task::spawn_blocking(move || stream_unpack::receive(Tee::new(rx, file), early));
    let mut size = 0u64;
    let mut failure = None;
    loop {
        let item = match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(_) => {
                failure = Some(ReceiveError::Idle(idle.as_secs()));
                break;
            }
        };
        match item {
            Ok(chunk) => {
                size += chunk.len() as u64;
                if size > limit {
                    failure = Some(ReceiveError::TooLarge(limit));
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(ReceiveError::Interrupted(e.to_string()));
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(f) = failure {
        return Err(f);
    }
    let early = written?;
    Ok((Spooled { path, size }, early))
}
