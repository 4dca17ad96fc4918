//! Package: the archival information package, a BagIt bag (RFC 8493) in a ZIP whose single top
//! folder is the archive id (CONTRACT.md §4).
//!
//! Entries are *stored*, not compressed: the payload keeps its bytes at a known offset, so a file
//! can be served or re-verified with a ranged read and never needs unpacking, and the package
//! holds no non-public compression (DA/T 70 usability).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::digest::Digests;
use crate::signing::{SignatureFile, Signer};

pub const BAGIT_TXT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";

/// A file writer that knows its position and starts write-back early, so the final fsync
/// before the package is committed has little left to do.
struct Tracked {
    file: io::BufWriter<File>,
    pos: Arc<AtomicU64>,
    unsynced: u64,
    synced_to: u64,
}

const WRITEBACK_EVERY: u64 = 16 << 20;

impl Write for Tracked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        let p = self.pos.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_EVERY {
            self.file.flush()?;
            start_writeback(self.file.get_ref(), self.synced_to, p - self.synced_to);
            self.synced_to = p;
            self.unsynced = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Tracked {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = self.file.seek(to)?;
        self.pos.store(p, Ordering::Relaxed);
        Ok(p)
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; it only schedules write-back.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &File, _offset: u64, _len: u64) {}

/// RFC 8493 §2.1.3: CR, LF and % in a manifest path are percent-encoded.
pub fn encode_manifest_path(p: &str) -> String {
    p.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

pub fn decode_manifest_path(p: &str) -> String {
    p.replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%25", "%")
}

#[derive(Debug, Clone)]
pub struct PayloadFile {
    /// Path inside `data/`, e.g. `submission/files/a.pdf`.
    pub rel: String,
    pub size: u64,
    pub digests: Digests,
    /// Offset of the file's bytes inside the package ZIP.
    pub offset: u64,
}

pub struct PackageWriter {
    archive_id: String,
    path: PathBuf,
    zip: ZipWriter<Tracked>,
    pos: Arc<AtomicU64>,
    options: SimpleFileOptions,
    payload: Vec<PayloadFile>,
}

/// What a finished package is: a file on local disk, ready to be committed to storage.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    pub size: u64,
    pub payload: Vec<PayloadFile>,
    pub tagmanifest_sha256: String,
    /// The tag manifest's SM3 (transfer volumes name both digests).
    pub tagmanifest_sm3: String,
    pub signature: SignatureFile,
}

pub struct BagInfo {
    pub source_organization: String,
    pub external_identifier: String,
    pub bagging_date: String,
    pub extra: Vec<(String, String)>,
}

fn zip_time(now: &chrono::DateTime<chrono::FixedOffset>) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    zip::DateTime::from_date_and_time(
        now.year().clamp(1980, 2107) as u16,
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
    )
    .unwrap_or_default()
}

impl PackageWriter {
    pub fn create(
        path: &Path,
        archive_id: &str,
        now: &chrono::DateTime<chrono::FixedOffset>,
    ) -> io::Result<Self> {
        let file = File::create(path)?;
        let pos = Arc::new(AtomicU64::new(0));
        let tracked = Tracked {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            pos: pos.clone(),
            unsynced: 0,
            synced_to: 0,
        };
        Ok(PackageWriter {
            archive_id: archive_id.to_string(),
            path: path.to_path_buf(),
            zip: ZipWriter::new(tracked),
            pos,
            options: SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(zip_time(now))
                .unix_permissions(0o644),
            payload: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start(&mut self, name: &str, size: u64) -> io::Result<u64> {
        let opts = self.options.large_file(size >= 0xFFFF_FFFF);
        self.zip
            .start_file(format!("{}/{}", self.archive_id, name), opts)
            .map_err(io::Error::other)?;
        Ok(self.pos.load(Ordering::Relaxed))
    }

    /// Starts a payload file `data/{rel}`; returns where its bytes begin in the package.
    pub fn begin_payload(&mut self, rel: &str, size: u64) -> io::Result<u64> {
        self.start(&format!("data/{rel}"), size)
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.zip.write_all(bytes)
    }

    /// Makes everything written so far readable through another handle on the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.zip.flush()
    }

    pub fn end_payload(&mut self, rel: &str, size: u64, digests: Digests, offset: u64) {
        self.payload.push(PayloadFile {
            rel: rel.to_string(),
            size,
            digests,
            offset,
        });
    }

    /// A payload file generated in memory (the archive's own `archive.xml`).
    /// How many payload files are recorded; the next [`PackageWriter::end_payload`] gets this
    /// index.
    pub fn payload_count(&self) -> usize {
        self.payload.len()
    }

    /// Sets the SM3 digest of payload file `index`, for writers that hash SM3 on another thread
    /// and learn it after the file's bytes are written (the manifests are written at finish).
    pub fn set_sm3(&mut self, index: usize, sm3: [u8; 32]) {
        if let Some(p) = self.payload.get_mut(index) {
            p.digests.sm3 = sm3;
        }
    }

    pub fn add_payload_bytes(&mut self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        let offset = self.begin_payload(rel, bytes.len() as u64)?;
        self.write(bytes)?;
        self.end_payload(rel, bytes.len() as u64, Digests::of(bytes), offset);
        Ok(())
    }

    fn add_tag(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.start(name, bytes.len() as u64)?;
        self.write(bytes)
    }

    /// Writes the manifests, bag-info, the tag manifest and its signature, then syncs the file.
    /// With `sm2`, `signature-sm2.json` too, over the same bytes.
    pub fn finish(
        mut self,
        info: BagInfo,
        signer: &Signer,
        sm2: Option<&crate::signing_sm2::Sm2Signer>,
        signed_at: &str,
    ) -> io::Result<Finished> {
        let mut payload = std::mem::take(&mut self.payload);
        payload.sort_by(|a, b| a.rel.cmp(&b.rel));
        let mut m_sha = String::new();
        let mut m_sm3 = String::new();
        let mut oxum_bytes = 0u64;
        for p in &payload {
            let path = encode_manifest_path(&format!("data/{}", p.rel));
            m_sha.push_str(&format!("{}  {}\n", p.digests.sha256_hex(), path));
            m_sm3.push_str(&format!("{}  {}\n", p.digests.sm3_hex(), path));
            oxum_bytes += p.size;
        }
        let mut bag_info = format!(
            "Source-Organization: {}\nExternal-Identifier: {}\nBagging-Date: {}\nPayload-Oxum: {}.{}\nBag-Software-Agent: guidang {}\nInternal-Sender-Identifier: {}\n",
            one_line(&info.source_organization),
            one_line(&info.external_identifier),
            info.bagging_date,
            oxum_bytes,
            payload.len(),
            env!("CARGO_PKG_VERSION"),
            self.archive_id,
        );
        for (k, v) in &info.extra {
            bag_info.push_str(&format!("{k}: {}\n", one_line(v)));
        }
        let tags: [(&str, &[u8]); 4] = [
            ("bagit.txt", BAGIT_TXT.as_bytes()),
            ("bag-info.txt", bag_info.as_bytes()),
            ("manifest-sha256.txt", m_sha.as_bytes()),
            ("manifest-sm3.txt", m_sm3.as_bytes()),
        ];
        let mut tagmanifest = String::new();
        for (name, bytes) in tags {
            self.add_tag(name, bytes)?;
            tagmanifest.push_str(&format!(
                "{}  {}\n",
                hex::encode(Sha256::digest(bytes)),
                name
            ));
        }
        self.add_tag("tagmanifest-sha256.txt", tagmanifest.as_bytes())?;
        let signature = signer.sign("tagmanifest-sha256.txt", tagmanifest.as_bytes(), signed_at);
        let sig_json = serde_json::to_vec_pretty(&signature).map_err(io::Error::other)?;
        self.add_tag("signature.json", &sig_json)?;
        if let Some(sm2) = sm2 {
            let f = sm2.sign("tagmanifest-sha256.txt", tagmanifest.as_bytes(), signed_at);
            let json = serde_json::to_vec_pretty(&f).map_err(io::Error::other)?;
            self.add_tag(crate::signing_sm2::SIGNATURE_FILE, &json)?;
        }
        let mut tracked = self.zip.finish().map_err(io::Error::other)?;
        tracked.file.flush()?;
        tracked.file.get_ref().sync_all()?;
        let size = tracked.pos.load(Ordering::Relaxed);
        Ok(Finished {
            path: self.path,
            size,
            payload,
            tagmanifest_sha256: hex::encode(Sha256::digest(tagmanifest.as_bytes())),
            tagmanifest_sm3: Digests::of(tagmanifest.as_bytes()).sm3_hex(),
            signature,
        })
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}
