//! Online delivery. The receiving archive takes each file of a batch (`volumes.xml`, its
//! signatures, then each volume) by resumable upload: `HEAD /api/v1/incoming/{transfer}/{file}`
//! answers `Upload-Offset` (the bytes it holds), `PUT` with `Content-Range: bytes a-b/total`
//! appends from exactly that offset (else 409 with the offset it holds), and the file is complete
//! when it reaches its total. `POST /api/v1/incoming/{transfer}/complete` receives what arrived
//! (the same checks as `guidang transfer receive`, under the keys pinned for incoming units) and
//! answers with the signed receipt. The sender drives it in the background: it asks each file's
//! offset, sends only what is missing, retries with backoff, never re-sends a finished file, then
//! records the receipt after checking it under the receiver's pinned key.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{HeldLease, TransferError, Transfers};
use crate::auth::Principal;

/// Bytes per upload request.
pub const CHUNK: u64 = 8 << 20;
/// The largest file an incoming upload may announce.
pub const MAX_FILE: u64 = 1 << 40;

/// What an upload request may name: a transfer id and a file of it.
fn safe(part: &str, max: usize) -> bool {
    !part.is_empty()
        && part.len() <= max
        && !part.starts_with('.')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ReceiptFiles {
    pub receipt: String,
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_sm2: Option<String>,
}

impl Transfers {
    fn incoming_dir(&self, who: &Principal, transfer_id: &str) -> Result<PathBuf, TransferError> {
        if !safe(transfer_id, 64) || !safe(&who.id, 64) {
            return Err(TransferError::Invalid(format!(
                "{transfer_id:?} is not a transfer id"
            )));
        }
        Ok(self
            .versions
            .settings()
            .data_dir
            .join("incoming")
            .join(&who.id)
            .join(transfer_id))
    }

    /// How many bytes of `file` this archive holds, and whether the file is complete.
    pub fn incoming_offset(
        &self,
        who: &Principal,
        transfer_id: &str,
        file: &str,
    ) -> Result<(u64, bool), TransferError> {
        if !safe(file, 128) {
            return Err(TransferError::Invalid(format!(
                "{file:?} is not a file of a transfer"
            )));
        }
        let dir = self.incoming_dir(who, transfer_id)?;
        if let Ok(m) = std::fs::metadata(dir.join(file)) {
            return Ok((m.len(), true));
        }
        let part = std::fs::metadata(dir.join(format!("{file}.part")))
            .map(|m| m.len())
            .unwrap_or(0);
        // Every byte arrived but the process ended before the file was renamed complete.
        let total = std::fs::read_to_string(dir.join(format!("{file}.total")))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if part > 0 && total == Some(part) {
            std::fs::rename(dir.join(format!("{file}.part")), dir.join(file))
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            let _ = std::fs::remove_file(dir.join(format!("{file}.total")));
            return Ok((part, true));
        }
        Ok((part, false))
    }

    /// Appends the body of an upload at `start` of a file of `total` bytes; returns the offset
    /// now held and whether `start` was that offset (if not, the body is not read).
    pub async fn incoming_append<S, E>(
        &self,
        who: &Principal,
        transfer_id: &str,
        file: &str,
        start: u64,
        total: u64,
        mut body: S,
    ) -> Result<(u64, bool), TransferError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        if total > MAX_FILE || start > total {
            return Err(TransferError::Invalid(format!(
                "a file of {total} bytes from {start} is not accepted"
            )));
        }
        let (held, complete) = self.incoming_offset(who, transfer_id, file)?;
        if complete || held != start {
            return Ok((held, held == start));
        }
        let dir = self.incoming_dir(who, transfer_id)?;
        std::fs::create_dir_all(&dir).map_err(|e| TransferError::Invalid(e.to_string()))?;
        // The size first announced is the file's: a later request announcing another is refused.
        let total_path = dir.join(format!("{file}.total"));
        match std::fs::read_to_string(&total_path) {
            Ok(t) if t.trim() != total.to_string() => {
                return Err(TransferError::Invalid(format!(
                    "{file} was announced as {} bytes, not {total}",
                    t.trim()
                )));
            }
            Ok(_) => {}
            Err(_) => std::fs::write(&total_path, total.to_string())
                .map_err(|e| TransferError::Invalid(e.to_string()))?,
        }
        let part = dir.join(format!("{file}.part"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        // Two uploads of the same file at once (a sender and the server that took its delivery
        // over) must not both append at the offset they both saw: one writes, the other is told
        // the offset and comes back.
        if f.try_lock().is_err() {
            return Ok((held, false));
        }
        let now_held = f
            .metadata()
            .map_err(|e| TransferError::Invalid(e.to_string()))?
            .len();
        if now_held != start {
            return Ok((now_held, false));
        }
        let mut at = start;
        let idle = Duration::from_secs(self.versions.settings().limits.receive_idle_secs);
        loop {
            let next = match tokio::time::timeout(idle, body.next()).await {
                Ok(n) => n,
                Err(_) => break,
            };
            let Some(chunk) = next else { break };
            let chunk = match chunk {
                Ok(c) => c,
                // A dropped connection: what arrived is kept, the sender resumes from it.
                Err(_) => break,
            };
            if at + chunk.len() as u64 > total {
                return Err(TransferError::Invalid(format!(
                    "more than the announced {total} bytes"
                )));
            }
            f.write_all(&chunk)
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            at += chunk.len() as u64;
            self.metrics
                .incoming_bytes
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // A crash with part of a request written: the sender resumes from what is on disk.
            if at < total {
                crate::failpoint::failpoint("incoming_partial");
            }
        }
        f.sync_all()
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        if at == total {
            std::fs::rename(&part, dir.join(file))
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            let _ = std::fs::remove_file(&total_path);
        }
        Ok((at, true))
    }

    /// Receives what a unit delivered online and answers with the signed receipt.
    pub async fn incoming_complete(
        &self,
        who: &Principal,
        transfer_id: &str,
    ) -> Result<ReceiptFiles, TransferError> {
        let dir = self.incoming_dir(who, transfer_id)?;
        if !dir.is_dir() {
            return Err(TransferError::NotFound(format!(
                "nothing of {transfer_id} has arrived"
            )));
        }
        let keys_path = self
            .versions
            .settings()
            .incoming_trusted_keys
            .clone()
            .ok_or_else(|| {
                TransferError::State(
                    "this archive pins no keys of incoming units (incoming_trusted_keys)".into(),
                )
            })?;
        let trusted = crate::verify::load_trusted_keys(&keys_path)
            .map_err(|e| TransferError::State(e.to_string()))?;
        let out = dir.join("receipt");
        self.receive(std::slice::from_ref(&dir), &trusted, &out, who)
            .await?;
        let read = |n: &str| std::fs::read_to_string(out.join(n)).ok();
        Ok(ReceiptFiles {
            receipt: read(super::receive::RECEIPT).unwrap_or_default(),
            signature: read(super::receive::RECEIPT_SIGNATURE).unwrap_or_default(),
            signature_sm2: read("receipt.xml.signature-sm2.json"),
        })
    }

    /// Asks for the online delivery of a built batch to the configured receiver (or for its
    /// resumption after it stopped). The delivery is a job the database holds: it starts now on
    /// this server, and any server of the deployment resumes it after a crash.
    pub async fn send(&self, id: &str, who: &Principal) -> Result<super::BatchView, TransferError> {
        let view = self.view(id).await?;
        if view.batch.state != "built" {
            return Err(TransferError::State(format!(
                "transfer {id} is {}; a built batch is sent",
                view.batch.state
            )));
        }
        if !self.receiver_configured() {
            return Err(TransferError::State(
                "no receiver configured (transfer_receiver_url, transfer_receiver_token, transfer_receiver_keys)".into(),
            ));
        }
        if !self.db.request_send(id).await? {
            return Err(TransferError::State(format!(
                "transfer {id} changed state meanwhile"
            )));
        }
        self.evidence.audit(who, "transfer_send", id, "202").await;
        let me = self.clone();
        tokio::spawn(async move { me.run_due_sends().await });
        self.view(id).await
    }

    pub fn receiver_configured(&self) -> bool {
        let s = self.versions.settings();
        s.transfer_receiver_url.is_some()
            && s.transfer_receiver_token.is_some()
            && s.transfer_receiver_keys.is_some()
    }

    /// Runs every delivery that is asked for and due, each on the server that takes its lease
    /// (the periodic task of every server calls this; a delivery runs on one at a time). An
    /// attempt that fails for a reason that may pass (the receiver unreachable or busy) is
    /// retried later with a growing wait; one that cannot (a refused token, a receipt that
    /// does not verify) stops as `failed` with its reason.
    pub async fn run_due_sends(&self) {
        if !self.receiver_configured() {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let due = match self.db.sends_due(now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the deliveries due");
                return;
            }
        };
        for id in due {
            let lease = match HeldLease::take(self, &format!("transfer-send:{id}")).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(transfer = %id, error = %e, "cannot take the delivery lease");
                    continue;
                }
            };
            let r = self.run_send(&id, &lease).await;
            lease.release().await;
            if let Err(e) = r {
                let attempts = self
                    .db
                    .transfer(&id)
                    .await
                    .ok()
                    .flatten()
                    .map(|t| t.send_attempts)
                    .unwrap_or(0);
                let retry_at = e.retry.then(|| {
                    let base = self.versions.settings().transfer_send_every_secs.max(1);
                    let wait = base.saturating_mul(1 << attempts.clamp(0, 12)).min(3600);
                    chrono::Utc::now().timestamp_millis() + (wait as i64) * 1000
                });
                tracing::warn!(transfer = %id, error = %e.message, retry = e.retry, "online delivery stopped");
                if let Err(db) = self.db.send_failed(&id, &e.message, retry_at).await {
                    tracing::error!(transfer = %id, error = %db, "cannot record the delivery's error");
                }
            }
        }
    }

    /// One attempt: sends every file not yet complete at the receiver, from the offset it
    /// holds; then asks for the receipt and records it.
    async fn run_send(&self, id: &str, lease: &HeldLease) -> Result<(), SendError> {
        let s = self.versions.settings().clone();
        let (Some(url), Some(token), Some(keys)) = (
            s.transfer_receiver_url.clone(),
            s.transfer_receiver_token.clone(),
            s.transfer_receiver_keys.clone(),
        ) else {
            return Err(SendError::stop("no receiver configured"));
        };
        let base = format!("{}/api/v1/incoming/{id}", url.trim_end_matches('/'));
        let client = client(&s).map_err(SendError::stop)?;
        let mut files: Vec<(String, String)> = vec![
            (
                "volumes.xml".into(),
                super::build::object_key(id, "volumes.xml"),
            ),
            (
                "volumes.xml.signature.json".into(),
                super::build::object_key(id, "volumes.xml.signature.json"),
            ),
        ];
        let sm2 = super::build::object_key(id, "volumes.xml.signature-sm2.json");
        if self.store.exists(&sm2).await.unwrap_or(false) {
            files.push(("volumes.xml.signature-sm2.json".into(), sm2));
        }
        for v in self.db.volumes(id).await.map_err(SendError::retry)? {
            files.push((format!("{}.zip", v.name), v.package_key));
        }
        let chunk = s.transfer_chunk_bytes.max(1);
        let mut done_bytes = 0u64;
        for (name, key) in &files {
            let size = self
                .store
                .size(key)
                .await
                .map_err(|e| SendError::retry(format!("{name}: {e}")))?;
            let mut offset = with_retries(|| async {
                let r = client
                    .head(format!("{base}/{name}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|e| Failure::Retry(chain(&e)))?;
                header_u64(&r, "Upload-Offset").ok_or_else(|| refused(&r, &format!("HEAD {name}")))
            })
            .await?;
            while offset < size {
                if lease.lost() {
                    return Err(SendError::retry("another server took over this delivery"));
                }
                let end = (offset + chunk).min(size);
                let bytes = self
                    .store
                    .read_range(key, offset..end)
                    .await
                    .map_err(|e| SendError::retry(format!("{name}: {e}")))?;
                let got = with_retries(|| {
                    let bytes = bytes.clone();
                    let client = &client;
                    let (base, token, name) = (&base, &token, name);
                    async move {
                        let r = client
                            .put(format!("{base}/{name}"))
                            .bearer_auth(token)
                            .header(
                                "Content-Range",
                                format!("bytes {offset}-{}/{size}", end - 1),
                            )
                            .header("Content-Type", "application/octet-stream")
                            .body(bytes)
                            .send()
                            .await
                            .map_err(|e| Failure::Retry(chain(&e)))?;
                        // 409: the receiver holds another offset; continue from it.
                        header_u64(&r, "Upload-Offset")
                            .ok_or_else(|| refused(&r, &format!("PUT {name}")))
                    }
                })
                .await?;
                if got > offset {
                    self.metrics
                        .transfer_sent_bytes
                        .fetch_add(got - offset, std::sync::atomic::Ordering::Relaxed);
                    if got < size {
                        // A crash in the middle of a volume, the receiver holding part of it.
                        crate::failpoint::failpoint("send_after_chunk");
                    }
                }
                offset = got;
                let _ = self
                    .db
                    .set_sent_bytes(id, (done_bytes + offset) as i64)
                    .await;
            }
            done_bytes += size;
        }
        let body = with_retries(|| async {
            let r = client
                .post(format!("{base}/complete"))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| Failure::Retry(chain(&e)))?;
            if r.status().is_success() {
                r.text().await.map_err(|e| Failure::Retry(chain(&e)))
            } else {
                let f = refused(&r, "POST complete");
                let text = r.text().await.unwrap_or_default();
                Err(match f {
                    Failure::Retry(m) => Failure::Retry(format!("{m}: {text}")),
                    Failure::Stop(m) => Failure::Stop(format!("{m}: {text}")),
                })
            }
        })
        .await?;
        let files: ReceiptFiles = serde_json::from_str(&body)
            .map_err(|e| SendError::stop(format!("the receiver's answer is not a receipt: {e}")))?;
        let dir = s
            .tmp_dir()
            .join(format!("receipt-{id}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).map_err(SendError::retry)?;
        let path = dir.join(super::receive::RECEIPT);
        let written = std::fs::write(&path, &files.receipt).and_then(|_| {
            std::fs::write(
                dir.join(super::receive::RECEIPT_SIGNATURE),
                &files.signature,
            )
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(SendError::retry(e));
        }
        let r = match crate::verify::load_trusted_keys(&keys) {
            Ok(trusted) => self
                .ack(&path, &trusted, &Principal::scheduler())
                .await
                .map_err(|e| SendError::stop(format!("the receipt is refused: {e}"))),
            Err(e) => Err(SendError::stop(format!("transfer_receiver_keys: {e}"))),
        };
        let _ = std::fs::remove_dir_all(&dir);
        r.map(|_| ())
    }
}

/// Why a delivery attempt stopped, and whether trying again later may succeed.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub retry: bool,
}

impl SendError {
    fn retry(e: impl std::fmt::Display) -> SendError {
        SendError {
            message: e.to_string(),
            retry: true,
        }
    }
    fn stop(e: impl std::fmt::Display) -> SendError {
        SendError {
            message: e.to_string(),
            retry: false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

enum Failure {
    Retry(String),
    Stop(String),
}

/// The HTTP client of online delivery: HTTPS by rustls; with `transfer_receiver_ca_file`, only
/// that authority is trusted.
fn client(s: &crate::config::Settings) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300));
    if let Some(ca) = &s.transfer_receiver_ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("transfer_receiver_ca_file {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("transfer_receiver_ca_file {}: {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "transfer_receiver_ca_file {}: no CERTIFICATE in it",
                ca.display()
            ));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| chain(&e))
}

/// An error with its causes: reqwest's own text ("error sending request") hides why (a refused
/// connection, an unknown certificate authority).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}

/// An answer without an offset: busy or failing receivers are tried again, a refusal is not.
fn refused(r: &reqwest::Response, what: &str) -> Failure {
    let status = r.status();
    let m = format!("{what}: the receiver answered {status}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Failure::Retry(m)
    } else {
        Failure::Stop(m)
    }
}

fn header_u64(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Runs `f` up to five times with backoff (0.5, 1, 2, 4 s) while it fails in a way that may pass.
async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut wait = Duration::from_millis(500);
    let mut last = String::new();
    for i in 0..5 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(Failure::Stop(m)) => return Err(SendError::stop(m)),
            Err(Failure::Retry(e)) => {
                tracing::warn!(error = %e, "transfer delivery: retrying");
                last = e;
                if i < 4 {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
    Err(SendError::retry(last))
}
