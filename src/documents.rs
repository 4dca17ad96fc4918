//! Documents guidang leaves behind for people (the filing register and registration form, the
//! destruction register): written a page of rows at a time to a staging file (memory does not grow
//! with the case count), hashed with SHA-256 and SM3 while written, and kept in the object store.

use std::io::{BufWriter, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sm3::Sm3;

use crate::storage::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot write a document: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot store a document: {0}")]
    Store(#[from] StoreError),
}

/// One stored document and its digests.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Document {
    pub name: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub sm3: String,
}

/// A document being written to a staging file, hashed as it goes.
pub struct DocWriter {
    name: String,
    file: BufWriter<tempfile::NamedTempFile>,
    sha: Sha256,
    sm3: Sm3,
    size: u64,
}

impl DocWriter {
    pub fn new(staging: &std::path::Path, name: &str) -> Result<DocWriter, DocumentError> {
        let f = tempfile::NamedTempFile::new_in(staging)?;
        Ok(DocWriter {
            name: name.into(),
            file: BufWriter::with_capacity(256 << 10, f),
            sha: Sha256::new(),
            sm3: Sm3::new(),
            size: 0,
        })
    }

    /// Ends an XML document written through [`crate::xml::Doc`] with its final newline.
    pub fn end_line(&mut self) -> Result<(), DocumentError> {
        self.put("\n")
    }

    pub fn put(&mut self, s: &str) -> Result<(), DocumentError> {
        self.sha.update(s.as_bytes());
        self.sm3.update(s.as_bytes());
        self.size += s.len() as u64;
        Ok(self.file.write_all(s.as_bytes())?)
    }

    /// Syncs the file and moves it into the store under `prefix/name`.
    pub async fn store(self, store: &Store, prefix: &str) -> Result<Document, DocumentError> {
        let f = self
            .file
            .into_inner()
            .map_err(|e| DocumentError::Io(e.into_error()))?;
        f.as_file().sync_all()?;
        let path = f.into_temp_path();
        let key = format!("{prefix}/{}", self.name);
        store.commit(&path, &key).await?;
        // The store moved the file; nothing is left for the guard to remove.
        let _ = path.keep();
        Ok(Document {
            name: self.name,
            key,
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
            sm3: hex::encode(self.sm3.finalize()),
        })
    }
}

/// A CSV field (RFC 4180). A text a spreadsheet would run as a formula (a case name beginning
/// with `=`, `+`, `-`, `@`) is kept as text by a leading apostrophe, as OWASP advises; the XML
/// register carries every value unchanged.
pub fn csv(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Text for an HTML page.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The document called `name` among those recorded (as JSON) for a batch or a list.
pub fn find(recorded: Option<&serde_json::Value>, name: &str) -> Option<Document> {
    recorded
        .and_then(|d| d.as_array())
        .and_then(|a| a.iter().find(|d| d["name"] == name))
        .and_then(|d| serde_json::from_value(d.clone()).ok())
}

/// A stored document, opened for streaming.
pub struct Opened {
    pub doc: Document,
    pub size: u64,
    pub stream: crate::storage::ByteStream,
}

impl Opened {
    pub async fn open(store: &Store, doc: Document) -> Result<Opened, StoreError> {
        let (size, stream) = store.get(&doc.key).await?;
        Ok(Opened { doc, size, stream })
    }
}

/// XML documents stream into a [`DocWriter`] through quick-xml's writer; each byte is hashed as
/// it is written.
impl Write for DocWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sha.update(buf);
        self.sm3.update(buf);
        self.size += buf.len() as u64;
        self.file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The names documents are stored under.
pub const NAMES: &[&str] = &["register.xml", "register.csv", "form.xml", "form.html"];

/// How a requested document name goes into the audit trail: a known name as it is; anything
/// else (a path segment can carry a name or an ID number) only as its length.
pub fn trail_name(name: &str) -> String {
    if NAMES.contains(&name) {
        name.to_string()
    } else {
        format!("invalid ({} chars)", name.chars().count())
    }
}
