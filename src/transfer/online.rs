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

use super::{TransferError, Transfers};
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
        let part = dir.join(format!("{file}.part"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
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
        }
        f.sync_all()
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        if at == total {
            std::fs::rename(&part, dir.join(file))
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
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

    /// Starts (or resumes) the online delivery of a built batch to the configured receiver.
    pub async fn send(&self, id: &str, who: &Principal) -> Result<super::BatchView, TransferError> {
        let view = self.view(id).await?;
        if view.batch.state != "built" {
            return Err(TransferError::State(format!(
                "transfer {id} is {}; a built batch is sent",
                view.batch.state
            )));
        }
        let s = self.versions.settings();
        if s.transfer_receiver_url.is_none()
            || s.transfer_receiver_token.is_none()
            || s.transfer_receiver_keys.is_none()
        {
            return Err(TransferError::State(
                "no receiver configured (transfer_receiver_url, transfer_receiver_token, transfer_receiver_keys)".into(),
            ));
        }
        self.evidence.audit(who, "transfer_send", id, "202").await;
        let me = self.clone();
        let (id2, who2) = (id.to_string(), who.clone());
        tokio::spawn(async move {
            if let Err(e) = me.run_send(&id2, &who2).await {
                tracing::error!(transfer = %id2, error = %e, "online delivery stopped; POST …/send resumes it");
            }
        });
        Ok(view)
    }

    /// Sends every file not yet complete at the receiver, from the offset it holds; then asks for
    /// the receipt and records it.
    pub async fn run_send(&self, id: &str, who: &Principal) -> Result<(), TransferError> {
        let _guard = self.sending.lock().await;
        let s = self.versions.settings().clone();
        let (Some(url), Some(token), Some(keys)) = (
            s.transfer_receiver_url.clone(),
            s.transfer_receiver_token.clone(),
            s.transfer_receiver_keys.clone(),
        ) else {
            return Err(TransferError::State("no receiver configured".into()));
        };
        let base = format!("{}/api/v1/incoming/{id}", url.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| TransferError::State(e.to_string()))?;
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
        for v in self.db.volumes(id).await? {
            files.push((format!("{}.zip", v.name), v.package_key));
        }
        for (name, key) in &files {
            let size = self
                .store
                .size(key)
                .await
                .map_err(|e| TransferError::State(format!("{name}: {e}")))?;
            let mut offset = with_retries(|| async {
                let r = client
                    .head(format!("{base}/{name}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                header_u64(&r, "Upload-Offset")
                    .ok_or_else(|| format!("HEAD {name}: {}", r.status()))
            })
            .await?;
            while offset < size {
                let end = (offset + CHUNK).min(size);
                let bytes = self
                    .store
                    .read_range(key, offset..end)
                    .await
                    .map_err(|e| TransferError::State(format!("{name}: {e}")))?;
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
                            .map_err(|e| e.to_string())?;
                        // 409: the receiver holds another offset; continue from it.
                        header_u64(&r, "Upload-Offset")
                            .ok_or_else(|| format!("PUT {name}: {}", r.status()))
                    }
                })
                .await?;
                offset = got;
            }
        }
        let body = with_retries(|| async {
            let r = client
                .post(format!("{base}/complete"))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let text = r.text().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(text)
            } else {
                Err(format!("POST complete: {status}: {text}"))
            }
        })
        .await?;
        let files: ReceiptFiles = serde_json::from_str(&body).map_err(|e| {
            TransferError::Invalid(format!("the receiver's answer is not a receipt: {e}"))
        })?;
        let dir = s
            .tmp_dir()
            .join(format!("receipt-{id}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let path = dir.join(super::receive::RECEIPT);
        std::fs::write(&path, &files.receipt).map_err(|e| TransferError::Invalid(e.to_string()))?;
        std::fs::write(
            dir.join(super::receive::RECEIPT_SIGNATURE),
            &files.signature,
        )
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let trusted = crate::verify::load_trusted_keys(&keys)
            .map_err(|e| TransferError::State(e.to_string()))?;
        let r = self.ack(&path, &trusted, who).await;
        let _ = std::fs::remove_dir_all(&dir);
        r.map(|_| ())
    }
}

fn header_u64(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Runs `f` up to five times with backoff (0.5, 1, 2, 4 s) while it fails.
async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, TransferError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut wait = Duration::from_millis(500);
    let mut last = String::new();
    for _ in 0..5 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, "transfer delivery: retrying");
                last = e;
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    Err(TransferError::State(format!("delivery failed: {last}")))
}
